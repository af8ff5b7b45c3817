import Tensors
import TestSupport
import Testing

/// Every instruction-set path of the C kernels the CPU can run (on an AVX-512 machine: AVX-512, AVX2 and baseline),
/// forced in turn with `KernelISA.limit(to:)`, against the same naive references and tolerances as the default path.
/// Other tests running meanwhile use the forced level too, which only changes their summation order.
@Suite("Kernels: every instruction-set path vs naive reference", .serialized, .computeBound)
struct KernelISATests {
    @Test("Detection and the environment variable's names")
    func names() {
        #expect(KernelISA.active <= KernelISA.detected)
        for level in KernelISA.allCases { #expect(KernelISA.named(level.description) == level) }
        #expect(KernelISA.named("AVX2") == nil && KernelISA.named("sse4") == nil && KernelISA.named("") == nil)
        #expect(KernelISA.environmentProblem == nil)
    }

    @Test("Forcing a level above the CPU's gives the CPU's; forcing lower sticks until raised again")
    func limits() {
        let detected = KernelISA.detected
        defer { KernelISA.limit(to: detected) }
        #expect(KernelISA.limit(to: .avx512) == detected)
        #expect(KernelISA.limit(to: .baseline) == .baseline && KernelISA.active == .baseline)
        #expect(KernelISA.limit(to: .avx2) == min(.avx2, detected))
    }

    @Test("Direct convolution (forward, fused ReLU, ∂x, ∂W, ∂b), pooling and ReLU backward on each path")
    func eachPath() {
        let detected = KernelISA.detected
        defer { KernelISA.limit(to: detected) }
        for level in KernelISA.allCases where level <= detected {
            #expect(KernelISA.limit(to: level) == level)
            let conv = DirectConvolutionTests()
            for c in DirectConvolutionTests.cases { conv.check(c) }
            // Rows of 16 and 56 (AVX2: blocks of 16 columns, an 8-column tail), channels off the 4-blocks, 3-D.
            for c in [
                DirectConvolutionTests.Case(batch: 1, cin: 3, cout: 13, spatial: [3, 16]),
                .init(batch: 1, cin: 2, cout: 9, spatial: [2, 56]),
                .init(batch: 2, cin: 3, cout: 6, spatial: [2, 3, 40]),
            ] {
                conv.check(c)
            }
            let kernels = KernelTests()
            kernels.pooling([2, 3, 6, 70], [2, 2], [2, 2])
            kernels.pooling([1, 2, 5, 3, 35], [2, 2, 2], [2, 2, 2])
            kernels.maxPoolTiesAndNaN([1, 1, 2, 32])
            kernels.reluBackward(threads: 2)
        }
    }
}
