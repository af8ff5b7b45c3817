import FederationCore
import Testing

func set(_ pairs: [(String, [Float])]) -> ParameterSet {
    ParameterSet(pairs.map { ParameterTensor(name: $0.0, shape: [$0.1.count], values: $0.1) })
}

@Suite("Aggregation math (hand-computed)")
struct AggregationTests {
    let a = set([("w", [1, 2, 3]), ("b", [10])])
    let b = set([("w", [3, 6, 9]), ("b", [20])])
    let c = set([("w", [-1, 0, 5]), ("b", [0])])

    @Test("Weighted average: (1·a + 3·b) / 4")
    func weighted() throws {
        let m = try weightedAverage([(a, 1), (b, 3)])
        #expect(m["w"]?.values == [2.5, 5, 7.5])
        #expect(m["b"]?.values == [17.5])
    }

    @Test("Order invariance and identity: averaging one set returns it; permutations agree")
    func invariance() throws {
        #expect(try weightedAverage([(a, 4)]) == a)  // 4·x/4 is exact in float
        let x = try weightedAverage([(a, 1), (b, 2), (c, 3)])
        let y = try weightedAverage([(c, 3), (a, 1), (b, 2)])
        for (p, q) in zip(x.tensors, y.tensors) { for (u, v) in zip(p.values, q.values) { #expect(abs(u - v) < 1e-6) } }
    }

    @Test("Streaming in small chunks, interleaved across clients, equals the batch average")
    func streaming() throws {
        var acc = StreamingAccumulator(structure: a)
        let ca = a.chunks(maxScalars: 2)
        let cb = b.chunks(maxScalars: 1)
        for i in 0..<max(ca.count, cb.count) {
            if i < ca.count { try acc.accept(ca[i], weight: 1, from: "A") }
            if i < cb.count { try acc.accept(cb[i], weight: 3, from: "B") }
        }
        try acc.commit(client: "A", weight: 1)
        try acc.commit(client: "B", weight: 3)
        #expect(try acc.weightedMean() == weightedAverage([(a, 1), (b, 3)]))
    }

    @Test("A broken stream is discarded; an incomplete result cannot be committed")
    func discard() throws {
        var acc = StreamingAccumulator(structure: a)
        for ch in a.chunks(maxScalars: 2) { try acc.accept(ch, weight: 1, from: "A") }
        try acc.commit(client: "A", weight: 1)
        let partial = Array(b.chunks(maxScalars: 2).prefix(1))
        for ch in partial { try acc.accept(ch, weight: 5, from: "B") }
        #expect(throws: FederationError.self) { try acc.commit(client: "B", weight: 5) }
        acc.discard(client: "B", chunks: partial, weight: 5)
        #expect(try acc.weightedMean() == a)
    }

    @Test("Tensors a site keeps (excluded) average over the sites that sent them, else stay unchanged")
    func partialUpdates() throws {
        var acc = StreamingAccumulator(structure: a)
        for ch in a.chunks(maxScalars: 8) { try acc.accept(ch, weight: 1, from: "A") }
        try acc.commit(client: "A", weight: 1)
        for ch in set([("w", [3, 6, 9])]).chunks(maxScalars: 8) { try acc.accept(ch, weight: 1, from: "B") }
        try acc.commit(client: "B", weight: 1)
        let m = try acc.weightedMean()
        #expect(m["w"]?.values == [2, 4, 6])
        #expect(m["b"]?.values == [10])
    }

    @Test("Rejected chunks: unknown tensor, out of range, NaN")
    func badChunks() {
        var acc = StreamingAccumulator(structure: a)
        #expect(throws: FederationError.self) {
            try acc.accept(ParameterChunk(tensor: "x", shape: [1], offset: 0, values: [1]), weight: 1, from: "A")
        }
        #expect(throws: FederationError.self) {
            try acc.accept(ParameterChunk(tensor: "w", shape: [3], offset: 2, values: [1, 2]), weight: 1, from: "A")
        }
        #expect(throws: FederationError.self) {
            try acc.accept(ParameterChunk(tensor: "w", shape: [3], offset: 0, values: [.nan]), weight: 1, from: "A")
        }
    }

    @Test("Admitted chunks added later (norm bound) equal accepted ones; commit refuses an incomplete result")
    func admitThenAdd() throws {
        var direct = StreamingAccumulator(structure: a)
        var later = StreamingAccumulator(structure: a)
        let chunks = b.chunks(maxScalars: 2)
        for ch in chunks {
            try direct.accept(ch, weight: 0.5, from: "B")
            try later.admit(ch, from: "B")
        }
        try later.checkComplete(client: "B")
        for ch in chunks { later.add(admitted: ch, weight: 0.5) }
        try direct.commit(client: "B", weight: 1)
        try later.commit(client: "B", weight: 1)
        #expect(try later.weightedMean() == direct.weightedMean())
        var partial = StreamingAccumulator(structure: a)
        try partial.admit(chunks[0], from: "C")
        #expect(throws: FederationError.self) { try partial.checkComplete(client: "C") }
        #expect(throws: FederationError.self) { try partial.admit(chunks[0], from: "C") }  // out of order: twice
    }

    @Test("Coordinate median")
    func median() throws {
        let m = try coordinateMedian([a, b, c])
        #expect(m["w"]?.values == [1, 2, 5])
        #expect(m["b"]?.values == [10])
        let even = try coordinateMedian([a, b])
        #expect(even["w"]?.values == [2, 4, 6])
    }
}

@Suite("Server optimisers (FedOpt, Reddi et al. 2021)")
struct ServerOptimizerTests {
    let global = set([("w", [1, -1])])
    let delta = set([("w", [0.5, -0.25])])

    @Test("FedAvg with η = 1 adds the mean diff")
    func fedAvg() throws {
        var o = ServerOptimizer(kind: .fedAvg)
        #expect(try o.step(global: global, delta: delta)["w"]?.values == [1.5, -1.25])
    }

    @Test("FedAvgM: two steps with β = 0.9, η = 1")
    func fedAvgM() throws {
        var o = ServerOptimizer(kind: .fedAvgM, learningRate: 1, beta1: 0.9)
        let x1 = try o.step(global: global, delta: delta)  // m = Δ
        let x2 = try o.step(global: x1, delta: delta)  // m = 0.9Δ + Δ = 1.9Δ
        #expect(abs(x2["w"]!.values[0] - (1 + 0.5 + 0.95)) < 1e-6)
        #expect(abs(x2["w"]!.values[1] - (-1 - 0.25 - 0.475)) < 1e-6)
    }

    @Test("FedAdam first step: m = 0.1Δ, v = 0.01Δ², x += η·m/(√v + τ)")
    func fedAdam() throws {
        var o = ServerOptimizer(kind: .fedAdam, learningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3)
        let x = try o.step(global: global, delta: delta)
        for (i, d) in [Float(0.5), -0.25].enumerated() {
            let m = 0.1 * d
            let v = 0.01 * d * d
            let want = global["w"]!.values[i] + 0.1 * m / (v.squareRoot() + 1e-3)
            #expect(abs(x["w"]!.values[i] - want) < 1e-6)
        }
    }

    @Test("FedYogi second moment: v ← v − (1−β₂)Δ² sign(v − Δ²)")
    func fedYogi() throws {
        var o = ServerOptimizer(kind: .fedYogi, learningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3)
        _ = try o.step(global: global, delta: delta)
        // From v = 0: v − Δ² < 0 so v = 0 + 0.01·Δ² (same as Adam on the first step).
        #expect(abs(o.secondMoment!["w"]!.values[0] - 0.01 * 0.25) < 1e-7)
        _ = try o.step(global: global, delta: set([("w", [0, 0])]))
        // Δ = 0: v unchanged (sign term multiplies 0).
        #expect(abs(o.secondMoment!["w"]!.values[0] - 0.0025) < 1e-7)
    }
}
