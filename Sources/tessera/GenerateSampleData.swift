import ArgumentParser
import DICOMIO
import SampleData

struct GenerateSampleData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-data",
        abstract: """
            Generate the synthetic three-site CT data set (labels as DICOM SEG, RTSTRUCT and NIfTI, one format a \
            site) and screening cohorts (deterministic).
            """)

    @Option(name: .shortAndLong, help: "Output folder (one sub-folder per site).")
    var output: String = "sample-data"

    @Option(help: "Random seed; the same seed gives the same bytes.")
    var seed: UInt64 = 20_261_121

    @Option(help: ArgumentHelp("Write the test suite's DICOM fixtures to this folder instead.", visibility: .hidden))
    var fixtures: String?

    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
        do {
            if let fixtures {
                let cases = try FixtureFactory().writeAll(into: fixtures)
                print("wrote \(cases.count) fixture cases to \(fixtures): \(cases.joined(separator: ", "))")
                return
            }
            let generator = SampleDataGenerator(seed: seed)
            let outputs = try generator.generate(into: output)
            for site in SiteProfile.all {
                let patients = outputs.filter { $0.site == site.name }
                let slices = patients.reduce(0) { $0 + $1.imagePaths.count }
                let labels: String
                switch site.labels {
                case .segmentation: labels = "\(patients.count) DICOM SEGs"
                case .structureSet(let liver, let spleen):
                    labels = "\(patients.count) RT Structure Sets (ROIs \(liver), \(spleen))"
                case .nifti(let template): labels = "\(patients.count) NIfTI label maps (\(template))"
                }
                print(
                    "\(site.name): \(patients.count) patients, \(slices) CT slices (\(site.transferSyntax.name)), "
                        + labels)
            }
            for site in SiteProfile.all {
                guard let cohort = site.screening else { continue }
                print(
                    "classification/\(site.name): \(cohort.studies) screening studies (hypodense liver lesions in "
                        + String(format: "about %.0f %%), labels.csv", cohort.prevalence * 100))
            }
        } catch {
            throw CommandFailure(error)
        }
    }
}
