import ArgumentParser
import DICOMIO
import FederationCore
import Foundation
import Tensors

struct TesseraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Federated learning for medical imaging: read DICOM, train, federate.",
        version: TesseraVersion.current,
        subcommands: [
            Inspect.self, Convert.self, Train.self, Predict.self, Simulate.self, Stats.self, GenerateSampleData.self,
            Provision.self, Server.self, Client.self, Admin.self, Egress.self,
        ])
}

/// Options every command shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print DCMTK diagnostics and runtime details (OpenBLAS core, threads, kernels' ISA).")
    var verbose = false

    func apply() {
        configureDICOMLogging(verbose: verbose)
        if verbose {
            let env = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"
            log("OpenBLAS core \(BLASRuntime.coreName) (OPENBLAS_CORETYPE=\(env)), \(BLASRuntime.threads) thread(s)")
            log("kernels \(KernelISA.active) (CPU: \(KernelISA.detected))")
        }
        // A mistyped or unsupported TESSERA_KERNELS_ISA is ignored by the kernels; say so whether verbose or not.
        if let problem = KernelISA.environmentProblem { log("warning: \(problem)") }
    }
}

/// Writes a line to standard error.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Turns a library error into a clean exit with its message.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

extension CommandFailure {
    init(_ error: DICOMError) { description = error.description }
}

/// The text of a pipeline YAML file.
func readPipeline(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure(description: "cannot read the pipeline \(path); check the path")
    }
    return String(decoding: data, as: UTF8.self)
}
