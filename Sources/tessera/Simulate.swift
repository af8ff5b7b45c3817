import ArgumentParser
import Dispatch
import FederatedAnalytics
import FederationJobs
import FederationSimulation
import Foundation
import Synchronization

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole federated segmentation or classification study on local site folders (one per site).",
        discussion: """
            Provisions a throw-away project (CA, server, site and admin kits), starts a `tessera server` process \
            and one `tessera client` process per site folder over loopback mutual TLS, submits the pipeline as the \
            admin and prints live progress (round, each site's result and local Dice, or ROC AUC for a classification \
            pipeline); each site trains on its own data and only weight diffs and aggregate figures reach the server. \
            Then every round's global model is evaluated on every site's held-out patients and compared with \
            local-only and centralised models trained to convergence as `tessera train` trains one (at most \
            `training.epochs`, with `training.early_stopping` and `time_budget_seconds`, the best epoch on the \
            held-out patients kept), and the learning-quality target is judged (federated or personalised ≥ every \
            local-only model and ≥ centralised − 0.02 at every site; `learningQuality` in metrics.json). A \
            classification site reads the labels.csv inside its folder (the pipeline's \
            `classification.labels.csv`). Writes global.safetensors, metrics.json, metrics.csv, report.html, and \
            federation/ (kits, process logs, server state, downloaded job files). --in-process runs the same rounds in one process. \
            --tensorboard DIR: the server's event files in DIR/server, each site's in DIR/<site>.
            """)

    @Argument(help: "Pipeline YAML (see pipelines/segmentation-unet2d.yaml).")
    var pipeline: String

    @Option(help: "Folder holding one sub-folder per site.")
    var data: String = "sample-data"

    @Option(name: .shortAndLong, help: "Output folder.")
    var output: String = "out/simulate"

    @Flag(help: "Skip the local-only and centralised baselines.")
    var noBaselines = false

    @Flag(help: "Run server and sites in this process (in-process transport) instead of separate processes over mTLS.")
    var inProcess = false

    @OptionGroup var common: CommonOptions

    @OptionGroup var tracking: TrackingOptions

    @Option(
        help: """
            The site policy copied into every site's kit (default pipelines/site-policy.yaml when present): statistics \
            queries and the privacy budget of DP training updates.
            """)
    var policy: String?

    func validate() throws {
        if inProcess, tracking.tensorboard != nil {
            throw ValidationError(
                "--tensorboard needs the server and site processes (their --tensorboard); leave out --in-process")
        }
    }

    func run() throws {
        common.apply()
        let text = try readPipeline(pipeline)
        if StudyJobFactory.isStatistics(text) {
            try runStatistics(text)
            return
        }
        var study = FederatedStudy(pipeline: pipeline, dataRoot: data, output: output)
        study.compare = !noBaselines
        if !inProcess {
            var federation = ProcessFederation()
            federation.sitePolicy =
                policy
                ?? (FileManager.default.fileExists(atPath: "pipelines/site-policy.yaml")
                    ? "pipelines/site-policy.yaml" : nil)
            federation.tensorboard = tracking.tensorboard
            study.federation = federation
        }
        do {
            let report = try runBlocking { [study] in try await study.run { say($0) } }
            print("")
            print(StudyReportWriter.table(report))
            print("wrote \(output)/global.safetensors, metrics.json, metrics.csv, report.html")
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }
}

extension Simulate {
    /// A cohort-statistics query over the sample sites as separate processes: provisioned kits (each site with the
    /// site policy), `tessera server`, one `tessera client` per site; this process submits the query as the admin,
    /// follows its phases and downloads the report.
    func runStatistics(_ text: String) throws {
        let root = data
        var sites = (try? FederationConfiguration(yaml: text))?.sites ?? []
        if sites.isEmpty {
            sites = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { name in
                var directory: ObjCBool = false
                return !name.hasPrefix(".")
                    && FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &directory)
                    && directory.boolValue
            }.sorted()
        }
        guard !sites.isEmpty else { throw CommandFailure(description: "no site folders under \(data)") }
        let submitted = try FederationConfiguration.pipeline(text, withSites: sites)
        var sitePolicy = policy
        if sitePolicy == nil, FileManager.default.fileExists(atPath: "pipelines/site-policy.yaml") {
            sitePolicy = "pipelines/site-policy.yaml"
        }
        let output = self.output
        let data = self.data
        let policyFile = sitePolicy
        let siteList = sites
        let tensorboard = tracking.tensorboard
        let result = try runBlocking {
            let deployment = try await LocalDeployment(
                base: output + "/federation", sites: siteList, dataRoot: data,
                sitePolicy: policyFile, tensorboard: tensorboard
            ) { say($0) }
            let job = try await deployment.admin.submit(pipeline: submitted, name: "statistics")
            say("submitted \(job); following its phases")
            try await deployment.follow(job: job, deadline: .seconds(3600)) { event in
                switch event {
                case .roundStarted(let r, _, let sites): say("phase \(r): asking \(sites.joined(separator: ", "))")
                case .resultAccepted(let r, let site, _, _): say("  phase \(r): \(site) answered")
                case .resultRejected(let r, let site, let reason): say("  phase \(r): \(site) rejected: \(reason)")
                case .siteDeclined(let r, let site, let reason): say("  phase \(r): \(site) declined: \(reason)")
                case .roundClosed(let r, let sites, let reason):
                    say("phase \(r) closed (\(reason)) with \(sites.joined(separator: ", "))")
                default: break
                }
            }
            let files = try await deployment.admin.download(jobID: job, to: output)
            await deployment.stop { say($0) }
            guard let json = files.first(where: { $0.hasSuffix("statistics.json") }) else {
                throw CommandFailure(description: "the server sent no statistics.json for \(job)")
            }
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(
                positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            return try decoder.decode(StatisticsResult.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        }
        print("")
        print(cohortTable(result))
        print("wrote \(output)/statistics.json and \(output)/statistics.html")
    }
}

/// Runs async work from a synchronous command and waits for it (the CLI's main thread blocks; the work runs on the
/// concurrency pool).
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    guard let outcome = result.withLock({ $0 }) else {
        throw CommandFailure(description: "the command produced no result")
    }
    return try outcome.get()
}
