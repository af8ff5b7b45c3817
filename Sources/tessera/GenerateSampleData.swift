import ArgumentParser
import DICOMIO
import SampleData

struct GenerateSampleData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-data",
        abstract: "Generate the synthetic three-site CT + DICOM SEG data set and screening cohorts (deterministic).")

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
                print(
                    "\(site.name): \(patients.count) patients, \(slices) CT slices (\(site.transferSyntax.name)), \(patients.count) SEGs"
                )
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
