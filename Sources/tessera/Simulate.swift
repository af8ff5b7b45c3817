import ArgumentParser
import FederationSimulation
import Dispatch
import Foundation
import Synchronization

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole federated segmentation study on local site folders (one site per sub-folder).",
        discussion: """
            Starts the coordinator and one site agent per site folder, runs the pipeline's `federation:` rounds \
            (each site trains on its own data; only weight diffs reach the server), prints live progress, then \
            compares the federated model with local-only and centralised training on the same epoch budget. \
            Writes global.safetensors, metrics.json, metrics.csv and report.html. Sites talk to the server through \
            the in-process transport for now; the gRPC + mutual-TLS transport carries the same protocol.
            """)

    @Argument(help: "Pipeline YAML (see pipelines/segmentation-unet2d.yaml).")
    var pipeline: String

    @Option(help: "Folder holding one sub-folder per site.")
    var data: String = "sample-data"

    @Option(name: .shortAndLong, help: "Output folder.")
    var output: String = "out/simulate"

    @Flag(help: "Skip the local-only and centralised baselines.")
    var noBaselines = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
        var study = FederatedStudy(pipeline: pipeline, dataRoot: data, output: output)
        study.compare = !noBaselines
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
