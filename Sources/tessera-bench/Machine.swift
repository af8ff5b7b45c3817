import ArgumentParser
import Tensors

/// The compute paths this process would use, for the benchmarks' header line (scripts/bench_header.sh): the C
/// kernels' instruction set (after `TESSERA_KERNELS_ISA`) and the OpenBLAS core (after `OPENBLAS_CORETYPE`).
struct Machine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machine", abstract: "Print the kernels' instruction set and the OpenBLAS core in use.")

    func run() throws {
        print("kernels \(KernelISA.active) (CPU: \(KernelISA.detected)), OpenBLAS \(BLASRuntime.coreName)")
        if let problem = KernelISA.environmentProblem { print("warning: \(problem)") }
    }
}
