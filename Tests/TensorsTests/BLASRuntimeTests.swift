import Foundation
import Tensors
import TestSupport
import Testing

@Suite("OpenBLAS runtime", .computeBound)
struct BLASRuntimeTests {
    let avx512: Set<String> = ["fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"]

    @Test("Relaunch plan: SkylakeX only with AVX-512, Haswell with AVX2, never over a set variable or a good core")
    func plan() {
        #expect(
            BLASRuntime.coreTypeRelaunchPlan(environment: [:], activeCore: "Prescott", cpuFlags: avx512) == "SkylakeX")
        #expect(
            BLASRuntime.coreTypeRelaunchPlan(environment: [:], activeCore: "Prescott", cpuFlags: ["avx2", "fma"])
                == "Haswell")
        #expect(BLASRuntime.coreTypeRelaunchPlan(environment: [:], activeCore: "Prescott", cpuFlags: ["sse2"]) == nil)
        #expect(
            BLASRuntime.coreTypeRelaunchPlan(
                environment: [:], activeCore: "Prescott", cpuFlags: ["avx512f", "avx2", "fma"]) == "Haswell")
        #expect(
            BLASRuntime.coreTypeRelaunchPlan(
                environment: ["OPENBLAS_CORETYPE": "Haswell"], activeCore: "Haswell", cpuFlags: avx512) == nil)
        #expect(BLASRuntime.coreTypeRelaunchPlan(environment: [:], activeCore: "Zen", cpuFlags: avx512) == nil)
        #expect(BLASRuntime.coreTypeRelaunchPlan(environment: [:], activeCore: "SkylakeX", cpuFlags: avx512) == nil)
    }

    @Test("cpuinfo flags are parsed from the first processor")
    func flags() {
        let text = "processor : 0\nflags\t\t: fpu sse2 avx2 fma avx512f\nprocessor : 1\nflags : fpu\n"
        #expect(BLASRuntime.cpuFlags(cpuinfo: text) == ["fpu", "sse2", "avx2", "fma", "avx512f"])
    }

    @Test("The test runner's OPENBLAS_CORETYPE (set by make test) is the active core")
    func activeCore() {
        guard let wanted = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !wanted.isEmpty else { return }
        #expect(BLASRuntime.coreName.lowercased() == wanted.lowercased())
        if BLASRuntime.supportedCoreType(cpuFlags: BLASRuntime.cpuFlags()) == "SkylakeX" {
            #expect(BLASRuntime.coreName == "SkylakeX")
        }
    }

    #if os(Linux)
        @Test("The allocator setting that keeps freed training buffers is applied (glibc)")
        func retainFreedMemory() {
            #expect(MemoryPolicy.retainFreedMemory())
        }
    #endif
}
