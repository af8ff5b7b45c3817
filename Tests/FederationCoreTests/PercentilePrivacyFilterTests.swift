import FederationCore
import Foundation
import Testing

/// Golden values from scripts/reference/percentile_privacy_golden.py (numpy's np.percentile, NVFlare's filter).
private struct Golden: Decodable {
    struct Tensor: Decodable {
        var name: String
        var shape: [Int]
        var input: [Float]
        var output: [Float]
    }
    struct Case: Decodable {
        var name: String
        var percentile: Double
        var gamma: Double
        var cutoff: Double
        var tensors: [Tensor]
    }
    var provenance: String
    var cases: [Case]
}

private let golden: Golden? = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()
    url.appendPathComponent("Golden/percentile_privacy_golden.json")
    guard let data = try? Data(contentsOf: url) else { return nil }
    return try? JSONDecoder().decode(Golden.self, from: data)
}()

/// numpy's default percentile (method "linear") by sorting a Double copy: the naive reference.
private func naivePercentile(_ values: [Float], _ p: Double) -> Double {
    let a = values.map { Double($0.magnitude) }.sorted()
    let h = Double(a.count - 1) * (p / 100)
    let lower = Int(h.rounded(.down))
    let upper = min(lower + 1, a.count - 1)
    let t = h - Double(lower)
    return t >= 0.5 ? a[upper] - (a[upper] - a[lower]) * (1 - t) : a[lower] + (a[upper] - a[lower]) * t
}

private func update(_ tensors: [ParameterTensor]) -> ModelUpdate {
    ModelUpdate(jobID: "j", round: 1, site: "a", sampleCount: 1, diff: ParameterSet(tensors))
}

private let context = FilterContext(site: "a", jobID: "j", round: 1)

@Suite("Percentile privacy filter (Shokri & Shmatikov 2015, NVFlare's PercentilePrivacy)")
struct PercentilePrivacyFilterTests {
    @Test("Cutoff and output equal numpy's on the golden cases")
    func goldenCases() async throws {
        let cases = try #require(golden?.cases)
        #expect(cases.count == 5)
        for c in cases {
            let input = update(c.tensors.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.input) })
            let cutoff = try #require(try PercentilePrivacyFilter.cutoff(of: input.diff, percentile: c.percentile))
            #expect(cutoff == c.cutoff, "\(c.name): cutoff \(cutoff), numpy \(c.cutoff)")
            let filter = try PercentilePrivacyFilter(percentile: c.percentile, gamma: c.gamma)
            let out = try await filter.process(input, context: context)
            #expect(out.diff.names == c.tensors.map(\.name))
            for (t, g) in zip(out.diff.tensors, c.tensors) {
                #expect(t.shape == g.shape)
                #expect(t.values == g.output, "\(c.name) \(t.name)")
            }
        }
    }

    @Test(
        "Selection gives the sorted reference's percentile for sizes, ties and levels",
        arguments: [1, 2, 3, 10, 101, 4096])
    func selectionMatchesSorting(count: Int) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(count)
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 997  // many ties, both signs
        }
        let a = (0..<count).map { _ in next() }
        let b = (0..<(count / 3)).map { _ in next() * 0.01 }
        var tensors = [ParameterTensor(name: "a", shape: [count], values: a)]
        if !b.isEmpty { tensors.append(ParameterTensor(name: "b", shape: [b.count], values: b)) }
        let diff = ParameterSet(tensors)
        for p in [0.001, 1, 10, 25, 33.3, 50, 62.5, 90, 99, 99.999] {
            let cutoff = try PercentilePrivacyFilter.cutoff(of: diff, percentile: p)
            #expect(cutoff == naivePercentile(a + b, p), "n \(a.count + b.count), p \(p)")
        }
        // Sorted, reversed and constant inputs (the usual quickselect worst cases).
        for values in [a.sorted(), Array(a.sorted().reversed()), [Float](repeating: 0.25, count: count)] {
            let d = ParameterSet([ParameterTensor(name: "w", shape: [count], values: values)])
            #expect(try PercentilePrivacyFilter.cutoff(of: d, percentile: 37) == naivePercentile(values, 37))
        }
    }

    @Test("Values below the cutoff become 0, the rest are clipped to ±γ (hand-derived)")
    func handDerived() async throws {
        // |v| sorted: 0.1 0.2 0.3 0.4 0.5; p = 50 → h = 2 → cutoff 0.3; γ = 0.35.
        let input = update([ParameterTensor(name: "w", shape: [5], values: [0.5, -0.1, 0.3, -0.4, 0.2])])
        let out = try await PercentilePrivacyFilter(percentile: 50, gamma: 0.35).process(input, context: context)
        #expect(out.diff["w"]?.values == [0.35, 0, 0.3, -0.35, 0])
        // p = 60 → h = 2.4 → cutoff 0.3 + 0.4·0.1 = 0.34: 0.3 is now dropped.
        let out60 = try await PercentilePrivacyFilter(percentile: 60, gamma: 1).process(input, context: context)
        #expect(out60.diff["w"]?.values == [0.5, 0, 0, -0.4, 0])
        let empty = update([])
        #expect(try await PercentilePrivacyFilter(percentile: 10, gamma: 1).process(empty, context: context) == empty)
    }

    @Test("Parameters out of range and non-finite diffs are refused, naming the problem")
    func refusals() async throws {
        let refused: [(Double, Double)] = [
            (0, 1), (100, 1), (-5, 1), (.nan, 1), (10, 0), (10, -1), (10, .infinity),
            (10, 1e-50),
        ]
        for (p, g) in refused {
            #expect(throws: FederationError.self, "p \(p), γ \(g)") {
                try PercentilePrivacyFilter(percentile: p, gamma: g)
            }
        }
        let filter = try PercentilePrivacyFilter(percentile: 10, gamma: 1)
        let bad = update([ParameterTensor(name: "w", shape: [2], values: [1, .nan])])
        do {
            _ = try await filter.process(bad, context: context)
            Issue.record("filtered a NaN")
        } catch {
            #expect(error.code == .nonFinite && error.message.contains("'w'"), "\(error)")
        }
    }
}
