import CTensorKernels

/// The instruction set of the direct C kernels (`CTensorKernels`: convolutions, pooling, ReLU backward, sums),
/// chosen at run time from the CPU's features and never one the CPU lacks. The environment variable
/// `TESSERA_KERNELS_ISA` (`avx512`, `avx2` or `baseline`) lowers it for a whole process, e.g. to measure the AVX2
/// kernels on an AVX-512 machine; a value the CPU lacks, or that names no level, is ignored (see
/// `environmentProblem`). OpenBLAS picks its own core separately (`BLASRuntime`, `OPENBLAS_CORETYPE`).
public enum KernelISA: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Portable C (SSE2 on x86-64, or whatever the target has).
    case baseline = 0
    /// AVX2 + FMA: 8-float vectors, 16 registers.
    case avx2 = 1
    /// AVX-512 F, VL, BW and DQ (with AVX2 + FMA): 16-float vectors, 32 registers.
    case avx512 = 2

    /// The name `TESSERA_KERNELS_ISA` takes.
    public var description: String {
        switch self {
        case .baseline: return "baseline"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    /// The variable that lowers the level for a process.
    public static let environmentVariable = "TESSERA_KERNELS_ISA"

    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }

    /// The best level this CPU supports.
    public static var detected: KernelISA { KernelISA(rawValue: Int(tk_isa_detected())) ?? .baseline }

    /// The level the kernels use now.
    public static var active: KernelISA { KernelISA(rawValue: Int(tk_isa())) ?? .baseline }

    /// The level named `name` (`avx512`, `avx2`, `baseline`), nil for anything else.
    public static func named(_ name: String) -> KernelISA? {
        KernelISA(rawValue: Int(tk_isa_parse(name)))
    }

    /// Uses `min(level, detected)` from now on, for every thread, and returns it. For tests and benchmarks that run a
    /// lower path on a better CPU; kernels already running finish on the level they started with.
    @discardableResult
    public static func limit(to level: KernelISA) -> KernelISA {
        KernelISA(rawValue: Int(tk_set_isa_limit(Int32(level.rawValue)))) ?? .baseline
    }

    /// Why `TESSERA_KERNELS_ISA` was ignored, or nil when it was applied or is unset.
    public static var environmentProblem: String? {
        switch Int(tk_isa_environment_status()) {
        case Int(TK_ISA_ENV_INVALID):
            return "\(environmentVariable) must be avx512, avx2 or baseline; using \(active)"
        case Int(TK_ISA_ENV_UNSUPPORTED):
            return "this CPU lacks the \(environmentVariable) level asked for; using \(active)"
        default: return nil
        }
    }
}
