import FederationCore
import FederationGRPC
import FederationTestSupport
import Foundation
import SafeTensorsFormat
import Testing

/// A federated classification study across real processes: `tessera server`, one `tessera client` per sample site
/// on its screening cohort (sample-data/classification/<site>, labels from the CSV each site keeps), the test as
/// admin, over loopback mutual TLS. Sites report aggregate figures only (AUC, accuracy, …), and the cross-site
/// evaluation reports AUC for every model at every site.
@Suite("Federated classification over real processes", .serialized)
struct ClassificationProcessTests {
    /// A small 3-D ResNet study: [4, 8] channels on 28×24×9 voxels, two rounds of one local epoch.
    static func pipeline(rounds: Int = 2) -> String {
        """
        preprocessing:
          orientation: RAS
          spacing: [12.0, 12.0, 16.0]
          crop_pad: {mode: foreground, threshold: -500, margin: [0, 0, 0], shape: [28, 24, 9], fill: -1024}
          window: {min: -50, max: 250}
          scale: unit
        model: {architecture: resnet3d, widths: [4, 8], blocks: [1, 1], seed: 3}
        training:
          epochs: 1
          batch_size: 4
          validation_fraction: 0.25
          seed: 1
          optimizer: {name: adam, learning_rate: 0.003}
        classification:
          classes: [no_lesion, lesion]
          input: volume
          labels: {csv: labels.csv, key: PatientID, label_column: label}
          series: {modality: CT, description: "Abdomen PV*", orientation: axial}
          bootstrap: {samples: 100, seed: 5}
        federation:
          rounds: \(rounds)
          local_epochs: 1
          min_clients: 3
          round_timeout_seconds: 300
          grace_period_seconds: 5
          strategy: fedavg
          sites: [\(ProcessCluster.sites.joined(separator: ", "))]
          cross_site_evaluation: true
        """
    }

    @Test(
        "Three sites train a 3-D ResNet classifier from their labels CSVs (one given with --labels); AUC per site and in the cross-site matrix",
        .timeLimit(.minutes(10)))
    func federatedClassification() async throws {
        let cluster = try ProcessCluster()
        try await cluster.startServer()
        let admin = try cluster.admin()
        let job = try await admin.submit(pipeline: Self.pipeline(), name: "classification")
        // research-center keeps its labels outside its data folder and points its client at them.
        let outside = cluster.path("research-center-labels.csv")
        try FileManager.default.copyItem(
            atPath: ProcessCluster.repository.path + "/sample-data/classification/research-center/labels.csv",
            toPath: outside)
        let events = try await cluster.events(admin, job: job) { event in
            if case .roundStarted(1, 0, _) = event {
                for site in ProcessCluster.sites {
                    try cluster.startClient(
                        site, dataRoot: "sample-data/classification",
                        extra: site == "research-center" ? ["--labels", outside] : [])
                }
            }
            return false
        }
        #expect(events.last == .jobFinished, "\(events.suffix(3))")
        let accepted = events.compactMap { e -> (String, Int, [String: Double])? in
            if case .resultAccepted(_, let site, let n, let metrics) = e { (site, n, metrics) } else { nil }
        }
        // 2 rounds × 3 sites (the local models of the cross-site step arrive as localModelReceived).
        #expect(accepted.count == 6)
        for (site, n, metrics) in accepted {
            // The weight is the site's training studies; the figures are aggregates in [0, 1], no per-study value.
            #expect((18...30).contains(n), "\(site): \(n) training studies")
            #expect(metrics["auc"].map { (0...1).contains($0) } == true, "\(site): \(metrics)")
            #expect(metrics["balanced_accuracy"].map { (0...1).contains($0) } == true, "\(site): \(metrics)")
            #expect(metrics["studies"].map { $0 >= 4 } == true, "\(site): \(metrics)")
            let reported: Set<String> = [
                "auc", "auc_lower", "auc_upper", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
                "studies", "train_studies", "dp_epsilon", "dp_epsilon_site_total",
            ]
            #expect(Set(metrics.keys).isSubset(of: reported), "\(metrics.keys.sorted())")
        }
        let folder = cluster.path("download-\(job)")
        _ = try await admin.download(jobID: job, to: folder)
        let matrix = try JSONDecoder().decode(
            CrossSiteMatrix.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/cross-site.json")))
        #expect(matrix.models == ["global"] + ProcessCluster.sites && matrix.sites == ProcessCluster.sites)
        for row in matrix.table(metric: "auc") {
            #expect(row.allSatisfy { $0.map { (0...1).contains($0) } == true }, "\(row)")
        }
        for site in ProcessCluster.sites {
            let cell = matrix.results["global"]?[site] ?? [:]
            let (lower, upper, auc) = (cell["auc_lower"] ?? -1, cell["auc_upper"] ?? -1, cell["auc"] ?? -1)
            #expect(lower <= auc && auc <= upper, "\(site): \(cell)")
        }
        // The global model is the 3-D ResNet (5-D convolution weights), finite.
        let model = try SafeTensorsFile.read(contentsOf: folder + "/global.safetensors")
        #expect(model.entries.contains { $0.name == "layer2.0.downsample.0.weight" && $0.shape.count == 5 })
        #expect(model.entries.allSatisfy { $0.values.allSatisfy(\.isFinite) })
        for site in ProcessCluster.sites {
            #expect(try await cluster.waitForClient(site) == 0, "\(site): \(cluster.logText(site))")
            let log = cluster.logText(site)
            #expect(log.contains("validation AUC"), "\(site)")
            // The segmentation studies of the site are not in its screening folder: nothing unlabelled to report.
            #expect(!log.contains("without a label"), "\(site)")
        }
    }
}
