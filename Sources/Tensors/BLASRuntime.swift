import CBLAS
import Foundation

/// The OpenBLAS library behind every `Tensors` kernel: which CPU kernels it runs and with how many threads.
///
/// OpenBLAS 0.3.21 (Debian 12) does not recognise recent CPUs (e.g. AMD Zen 4, Sapphire Rapids) and falls back to
/// its Prescott kernels, about 8× slower for sgemm. The core is chosen when the library loads, from
/// `OPENBLAS_CORETYPE`, so the variable must be set before the process starts: see `coreTypeRelaunchPlan`.
public enum BLASRuntime {
    /// The active OpenBLAS core, e.g. "SkylakeX", "Haswell", "Prescott".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS build configuration string.
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(cString: text)
    }

    /// Threads OpenBLAS uses for one call. Setting it sets the kernels' whole thread budget
    /// (`Parallelism.threads`), so Tessera's own workers and OpenBLAS never use more threads together.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            Parallelism.threads = newValue
            Parallelism.useBLASThreads(max(1, newValue))
        }
    }

    /// Cores OpenBLAS falls back to when it does not know the CPU; anything else it chose itself is kept.
    static let fallbackCores: Set<String> = [
        "prescott", "core2", "penryn", "dunnington", "nehalem", "katmai",
        "coppermine", "northwood", "banias", "atom", "unknown",
    ]

    /// The core this CPU can run, from its feature flags: SkylakeX for AVX-512 (F, BW, DQ, VL), Haswell for
    /// AVX2 + FMA, nil otherwise. Never an AVX-512 core on a CPU without AVX-512.
    public static func supportedCoreType(cpuFlags: Set<String>) -> String? {
        if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// The flags of the first CPU in /proc/cpuinfo (empty when unreadable).
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
        -> Set<String>
    {
        guard let cpuinfo else { return [] }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// The `OPENBLAS_CORETYPE` value to relaunch with, or nil when nothing should change: the variable is already
    /// set, OpenBLAS chose a proper core itself, or the CPU supports nothing better.
    public static func coreTypeRelaunchPlan(
        environment: [String: String], activeCore: String,
        cpuFlags: Set<String>
    ) -> String? {
        if environment["OPENBLAS_CORETYPE"] != nil { return nil }
        guard fallbackCores.contains(activeCore.lowercased()) else { return nil }
        guard let target = supportedCoreType(cpuFlags: cpuFlags), target.lowercased() != activeCore.lowercased()
        else { return nil }
        return target
    }

    /// Re-executes the current process with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to a slow core on a
    /// CPU that supports a fast one. Returns only when no relaunch is needed or `execv` failed.
    public static func relaunchWithBestCoreIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard let core = coreTypeRelaunchPlan(environment: env, activeCore: coreName, cpuFlags: cpuFlags()) else {
            return
        }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let args = CommandLine.arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv only returns on failure: carry on with the slow core.
        for p in cArgs { free(p) }
    }
}
