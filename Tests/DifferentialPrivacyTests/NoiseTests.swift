import DifferentialPrivacy
import Foundation
import TestSupport
import Testing

@Suite("Noise", .computeBound)
struct NoiseTests {
    /// 200 000 seeded draws: mean and standard deviation of N(0, σ²) within 5 standard errors of 0 and σ.
    @Test func gaussianMatchesItsMoments() {
        var source = SeededNoiseSource(seed: 20_261_207)
        let sigma = 2.5
        let n = 200_000
        var sum = 0.0
        var squares = 0.0
        for _ in 0..<n {
            let x = Calibration.gaussian(sigma: sigma, using: &source)
            sum += x
            squares += x * x
        }
        let mean = sum / Double(n)
        let std = (squares / Double(n) - mean * mean).squareRoot()
        #expect(abs(mean) < 5 * sigma / Double(n).squareRoot())
        #expect(abs(std - sigma) < 5 * sigma / (2 * Double(n)).squareRoot())
    }

    @Test func seededSourcesDifferPerSite() {
        var a = SeededNoiseSource(seed: 1, site: "a")
        var b = SeededNoiseSource(seed: 1, site: "b")
        #expect(a.uniform() != b.uniform())
    }
}
