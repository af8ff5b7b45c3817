import FederationClient
import FederationCore
import FederationJobs
import FederationServer
import FederationSimulation
import Foundation
import Testing
import Training

/// The server's job factory refuses a poison pipeline at submission (`plan`) and again when the job would start
/// (`makeRunner`), naming the key, before a model or a volume is allocated.
@Suite("Job factory limits")
struct StudyJobFactoryLimitsTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let training =
        (try? String(
            contentsOfFile: root + "/pipelines/segmentation-unet2d.yaml",
            encoding: .utf8)) ?? ""
    static let statistics =
        ((try? String(
            contentsOfFile: root + "/pipelines/cohort-statistics.yaml",
            encoding: .utf8)) ?? "") + "federation:\n  sites: [a, b]\n"

    static let classification =
        (try? String(
            contentsOfFile: root + "/pipelines/classification-resnet3d.yaml",
            encoding: .utf8)) ?? ""

    /// The shipped classification pipeline with `old` replaced by `new` (which must occur).
    static func classification(_ old: String, _ new: String) -> String {
        precondition(classification.contains(old), "the shipped pipeline changed: \(old)")
        return classification.replacingOccurrences(of: old, with: new)
    }

    /// The shipped training pipeline with `old` replaced by `new` (which must occur).
    static func training(_ old: String, _ new: String) -> String {
        precondition(training.contains(old), "the shipped pipeline changed: \(old)")
        return training.replacingOccurrences(of: old, with: new)
    }

    static let poison: [(String, String)] = [
        (
            training("preprocessing:\n", "preprocessing:\n  resize: [100000, 100000, 100000]\n"),
            "preprocessing.resize"
        ),
        (training("encoder_channels: [8, 16, 32, 64]", "encoder_channels: [1000000]"), "model.encoder_channels"),
        (
            training("encoder_channels: [8, 16, 32, 64]", "encoder_channels: [2048, 2048, 2048, 2048]"),
            "model.encoder_channels"
        ),
        (training("bottleneck_channels: 128", "bottleneck_channels: 100000000"), "model.bottleneck_channels"),
        (training("shape: [128, 128, 48]", "shape: [100000, 128, 48]"), "preprocessing.crop_pad.shape[0]"),
        (training("spacing: [2.8, 2.8, 4.0]", "spacing: [.nan, 2.8, 4.0]"), "preprocessing.spacing[0]"),
        (training("  rounds: 5", "  rounds: 1000000000"), "federation.rounds"),
        (training("  rounds: 5", "  rounds: -1"), "federation.rounds"),
        (training("  rounds: 5", "  rounds: 5\n  rounds: 1000000000"), "federation.rounds"),
        (training("  local_epochs: 1", "  local_epochs: 0"), "federation.local_epochs"),
        (training("epochs: 12", "epochs: 1000000000"), "training.epochs"),
        (training("batch_size: 8", "batch_size: 100000"), "training.batch_size"),
        (training("learning_rate: 0.002", "learning_rate: .nan"), "training.optimizer.learning_rate"),
        (training("server_learning_rate: 1.0", "server_learning_rate: .inf"), "federation.server_learning_rate"),
        (training("proximal_mu: 0.01", "proximal_mu: 1e300"), "federation.proximal_mu"),
        (
            training("round_timeout_seconds: 1800", "round_timeout_seconds: 10000000000"),
            "federation.round_timeout_seconds"
        ),
        (
            training(
                "sites: [community-hospital, research-center, treatment-center]",
                "sites: [community-hospital, research-center, community-hospital]"), "federation.sites[2]"
        ),
        (
            training("sites: [community-hospital, research-center, treatment-center]", "sites: [a, [b], c]"),
            "federation.sites[1]"
        ),
        (
            training("sites: [community-hospital, research-center, treatment-center]", "sites: [a, '../etc', c]"),
            "federation.sites[1]"
        ),
        (training("sites: [community-hospital, research-center, treatment-center]", "sites: []"), "federation.sites"),
        (training("  min_clients: 2", "  min_clients: 7"), "federation.min_clients"),
        (training("model:\n", "modle:\n  seed: 1\nmodel:\n"), "modle"),
        (
            training("  strategy: fedavg", "  strategy: " + String(repeating: "z", count: 100_000)),
            "federation.strategy"
        ),
        (classification("widths: [8, 16, 32]", "widths: [2048, 2048, 2048]"), "model.widths"),
        (classification("blocks: [1, 1, 1]", "blocks: [1000, 1, 1]"), "model.blocks[0]"),
        (classification("blocks: [1, 1, 1]", "blocks: [1, 1]"), "model.blocks"),
        (classification("classes: [no_lesion, lesion]", "classes: [lesion]"), "classification.classes"),
        (classification("csv: labels.csv", "csv: /etc/passwd"), "classification.labels.csv"),
        (classification("csv: labels.csv", "csv: ../../kits/site/labels.csv"), "classification.labels.csv"),
        (classification("samples: 1000", "samples: 1000000000"), "classification.bootstrap.samples"),
        (classification("input: volume", "input: mip"), "classification.input"),
        (classification("batch_size: 4", "batch_size: 1000"), "training.batch_size"),
        (classification("classification:\n", "classification:\n  colour: red\n"), "classification.colour"),
        (
            statistics.replacingOccurrences(of: "bounds: [0, 100]", with: "bounds: [0, 1e300]"),
            "query.features[0].bounds[1]"
        ),
        (statistics.replacingOccurrences(of: "bins: 10\n", with: "bins: 1000000000\n"), "query.features[0].bins"),
        (statistics.replacingOccurrences(of: "epsilon: 2.0", with: "epsilon: .nan"), "query.features[0].epsilon"),
        (statistics + "model:\n  seed: 1\n", "model"),
        (statistics.replacingOccurrences(of: "sites: [a, b]", with: "sites: [a, a]"), "federation.sites[1]"),
    ]

    @Test("A poison pipeline is refused at submit with the key named", arguments: poison)
    func refusedAtSubmit(pipeline: String, key: String) {
        do {
            let plan = try StudyJobFactory().plan(pipeline: pipeline)
            Issue.record("accepted: \(plan)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(key), "\(error.message.prefix(400))")
            #expect(error.message.utf8.count < 2000, "a short message, not an echo of the pipeline")
        }
    }

    @Test("A poison pipeline already queued fails at job start with the reason, before the model is built")
    func refusedAtStart() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try SQLiteCheckpointStore(folder: folder)
        let pipeline = Self.training("encoder_channels: [8, 16, 32, 64]", "encoder_channels: [1000000]")
        do {
            _ = try await StudyJobFactory().makeRunner(
                jobID: "job-0001", pipeline: pipeline, submittedBy: "lead",
                store: store)
            Issue.record("started")
        } catch {
            #expect(error.message.contains("model.encoder_channels[0]"), "\(error)")
        }
    }

    @Test("The server's own limits apply: a pipeline within the defaults is refused by lower limits")
    func serverLimits() throws {
        #expect(try StudyJobFactory().plan(pipeline: Self.training).rounds == 5)
        var limits = PipelineLimits()
        limits.maxRounds = 3
        do {
            _ = try StudyJobFactory(limits: limits).plan(pipeline: Self.training)
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("federation.rounds") && error.message.contains("max_rounds"))
        }
        var small = PipelineLimits()
        small.maxParameters = 1000
        do {
            _ = try StudyJobFactory(limits: small).plan(pipeline: Self.training)
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("max_parameters"), "\(error)")
        }
    }

    @Test("Alias bombs and deep nesting are refused before the document is walked")
    func yamlShapes() {
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<9 {
            bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        bomb += "model:\n  seed: *a8\nfederation:\n  sites: [a]\n"
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        for pipeline in [bomb, "federation:\n  sites: " + deep, "query:\n  name: " + deep] {
            do {
                _ = try StudyJobFactory().plan(pipeline: pipeline)
                Issue.record("accepted")
            } catch {
                #expect(error.code == .invalidConfiguration)
                #expect(error.message.utf8.count < 2000)
            }
        }
    }

    @Test("A site checks the task's pipeline with its own limits before reading its data")
    func siteLimits() async throws {
        var limits = PipelineLimits()
        limits.maxParameters = 1000
        let site = PipelineSiteTrainer(dataFolder: "/nonexistent/site-data", limits: limits)
        let task = TaskAssignment(
            jobID: "job-0001", round: 1, kind: .train, site: "a",
            config: ["pipeline": .string(Self.training)])
        do {
            _ = try await site.trainer(for: task)
            Issue.record("accepted")
        } catch {
            // Refused by the limit, not by the missing folder: nothing was read.
            #expect(error.message.contains("max_parameters") && !error.message.contains("nonexistent"), "\(error)")
        }
        let poison = Self.training("preprocessing:\n", "preprocessing:\n  resize: [100000, 100000, 100000]\n")
        let other = TaskAssignment(
            jobID: "job-0002", round: 1, kind: .train, site: "a",
            config: ["pipeline": .string(poison)])
        do {
            _ = try await PipelineSiteTrainer(dataFolder: "/nonexistent").trainer(for: other)
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("preprocessing.resize[0]"), "\(error)")
        }
    }

    @Test("Every shipped pipeline passes the default limits at submit")
    func shipped() throws {
        let training = try StudyJobFactory().plan(pipeline: Self.training)
        #expect(training.sites.count == 3 && training.rounds == 5)
        let statistics = try StudyJobFactory().plan(pipeline: Self.statistics)
        #expect(statistics.sites == ["a", "b"])
    }
}
