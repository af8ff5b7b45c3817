import ArgumentParser
import FederationSimulation
import Dispatch
import Foundation
import Synchronization

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole federated segmentation study on local site folders (one site per sub-folder).",
        discussion: """
            Provisions a throw-away project (CA, server, site and admin kits), starts a `tessera server` process \
            and one `tessera client` process per site folder over loopback mutual TLS, submits the pipeline as the \
            admin and prints live progress (round, each site's result and local Dice); each site trains on its own \
            data and only weight diffs reach the server. Then every round's global model is evaluated on every \
            site's held-out patients and compared with local-only and centralised training on the same epoch \
            budget. Writes global.safetensors, metrics.json, metrics.csv, report.html, and federation/ (kits, \
            process logs, server state, downloaded job files). --in-process runs the same rounds in one process.
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

    func run() throws {
        common.apply()
        var study = FederatedStudy(pipeline: pipeline, dataRoot: data, output: output)
        study.compare = !noBaselines
        if !inProcess { study.federation = ProcessFederation() }
        do {
            let report = try runBlocking { [study] in try await study.run { print($0) } }
            print("")
            print(StudyReportWriter.table(report))
            print("wrote \(output)/global.safetensors, metrics.json, metrics.csv, report.html")
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }
}

/// Runs async work from a synchronous command and waits for it (the CLI's main thread blocks; the work runs on the
/// concurrency pool).
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { let value = try await body(); result.withLock { $0 = .success(value) } } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    guard let outcome = result.withLock({ $0 }) else { throw CommandFailure(description: "the command produced no result") }
    return try outcome.get()
}
