import FederationCore
import Testing

private func base(_ values: ArraySlice<Float>) -> Int {
    values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
}
private func base(_ values: [Float]) -> Int { values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }

@Suite("Parameters without copies: chunk views, in-place arithmetic, streaming assembly")
struct InPlaceTests {
    let a = set([("w", [1, 2, 3, 4, 5]), ("b", [10])])

    @Test("Chunks are views into the set's storage, in order, at most maxScalars long")
    func chunkViews() throws {
        let chunks = a.chunks(maxScalars: 2)
        #expect(chunks.map(\.tensor) == ["w", "w", "w", "b"])
        #expect(chunks.map(\.offset) == [0, 2, 4, 0])
        #expect(chunks.map { Array($0.values) } == [[1, 2], [3, 4], [5], [10]])
        let w = try #require(a["w"])
        #expect(base(chunks[1].values) == base(w.values) + 2 * MemoryLayout<Float>.size)
        #expect(try ParameterSet(assembling: chunks) == a)
    }

    @Test("An accumulator made from last round's mean reuses its storage, zeroed; reset zeroes the sums in place")
    func accumulatorReusesStorage() throws {
        var first = StreamingAccumulator(structure: a)
        for chunk in a.chunks(maxScalars: 2) { try first.accept(chunk, weight: 2, from: "s") }
        try first.commit(client: "s", weight: 2)
        let mean = try first.takeWeightedMean()
        #expect(mean == a)
        let address = base(try #require(mean["w"]).values)
        var next = StreamingAccumulator(structure: a, reusing: consume mean)
        #expect(throws: FederationError.self) { try next.weightedMean() }  // empty
        let half = set([("w", [0.5, 0.5, 0.5, 0.5, 0.5]), ("b", [-1])])
        for chunk in half.chunks(maxScalars: 3) { try next.accept(chunk, weight: 1, from: "t") }
        next.reset()  // a rebuild: nothing of t is left
        for chunk in a.chunks(maxScalars: 3) { try next.accept(chunk, weight: 1, from: "u") }
        try next.commit(client: "u", weight: 1)
        let again = try next.takeWeightedMean()
        #expect(again == a)
        #expect(base(try #require(again["w"]).values) == address)
        // Another structure gets fresh sums.
        let other = StreamingAccumulator(structure: a, reusing: set([("v", [1])]))
        #expect(other.byteCount == a.byteCount)
    }

    @Test("add and subtract work in the set's own storage and match adding/subtracting")
    func inPlace() throws {
        let other = set([("w", [0.5, 0.5, 0.5, 0.5, 0.5]), ("b", [-1])])
        var x = try a.adding(other)  // a fresh, unshared set
        let before = base(try #require(x["w"]).values)
        try x.add(other, scaledBy: 2)
        #expect(base(try #require(x["w"]).values) == before)
        #expect(x == (try a.adding(other, scaledBy: 3)))
        try x.subtract(other)
        #expect(x == (try a.adding(other, scaledBy: 2)))
        #expect(throws: FederationError.self) { try x.add(set([("w", [1])])) }
        // A set that shares its storage is copied first: the other holder is unchanged.
        let shared = x
        try x.add(other)
        #expect(shared == (try a.adding(other, scaledBy: 2)))
    }

    @Test("The assembler rebuilds from chunks in any tensor interleaving and refuses gaps, overlaps and overruns")
    func assembler() throws {
        var assembler = ParameterAssembler()
        let chunks = a.chunks(maxScalars: 3)
        try assembler.append(chunks[2])  // b first: tensors are kept in order of first appearance
        try assembler.append(chunks[0])
        try assembler.append(chunks[1])
        #expect(try assembler.finish() == ParameterSet([try #require(a["b"]), try #require(a["w"])]))

        var gap = ParameterAssembler()
        #expect(throws: FederationError.self) { try gap.append(chunks[1]) }
        var short = ParameterAssembler()
        try short.append(chunks[0])
        #expect(throws: FederationError.self) { try short.finish() }
        var over = ParameterAssembler()
        #expect(throws: FederationError.self) {
            try over.append(ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [1, 2, 3]))
        }
        var reshaped = ParameterAssembler()
        try reshaped.append(ParameterChunk(tensor: "w", shape: [4], offset: 0, values: [1, 2]))
        #expect(throws: FederationError.self) {
            try reshaped.append(ParameterChunk(tensor: "w", shape: [2, 2], offset: 2, values: [3, 4]))
        }
    }

    @Test("An assembler reusing last round's model builds in its arrays; a shared array is left as it was")
    func assemblerReuses() throws {
        let next = set([("w", [6, 7, 8, 9, 10]), ("b", [20])])
        var previous: ParameterSet? = set([("w", [1, 2, 3, 4, 5]), ("b", [10]), ("gone", [1])])
        let addresses = try ["w", "b"].map { base(try #require(previous?[$0]).values) }
        var assembler = ParameterAssembler(reusing: previous.take()!)
        for chunk in next.chunks(maxScalars: 2) { try assembler.append(chunk) }
        let built = try assembler.finish()
        #expect(built == next)
        #expect(try ["w", "b"].map { base(try #require(built[$0]).values) } == addresses)

        // Still held elsewhere: copy-on-write keeps the holder's values, the model gets fresh storage.
        let held = set([("w", [1, 2, 3, 4, 5]), ("b", [10])])
        var shared = ParameterAssembler(reusing: held)
        for chunk in next.chunks(maxScalars: 4) { try shared.append(chunk) }
        #expect(try shared.finish() == next)
        #expect(held == set([("w", [1, 2, 3, 4, 5]), ("b", [10])]))
        // The checks are the same: an overrun is refused even where the reused array has room.
        var big = ParameterAssembler(reusing: set([("w", [Float](repeating: 0, count: 100))]))
        #expect(throws: FederationError.self) {
            try big.append(ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [1, 2, 3]))
        }
    }

    @Test("Retracting a result's chunks restores the sums exactly; takeWeightedMean equals weightedMean")
    func retractAndTake() throws {
        var acc = StreamingAccumulator(structure: a)
        for c in a.chunks(maxScalars: 2) { try acc.accept(c, weight: 3, from: "A") }
        try acc.commit(client: "A", weight: 3)
        let reference = try acc.weightedMean()
        let partial = set([("w", [0.125, 0.25, 0.375, 0.5, 0.625]), ("b", [7])]).chunks(maxScalars: 2).prefix(2)
        for c in partial { try acc.accept(c, weight: 5, from: "B") }
        for c in partial { acc.retract(c, weight: 5) }
        acc.forget(client: "B")
        let mean = try acc.weightedMean()
        #expect(mean == reference)
        #expect(acc.byteCount == 6 * 4)
        #expect(try acc.takeWeightedMean() == reference)
        #expect(acc.byteCount == 0)
        // Emptied: late chunks no longer fit, and there is nothing to average.
        #expect(throws: FederationError.self) { try acc.accept(a.chunks(maxScalars: 8)[0], weight: 1, from: "C") }
        #expect(throws: FederationError.self) { try acc.weightedMean() }
    }

    @Test(
        "Every server optimiser's in-place step equals its copying step",
        arguments: [
            ServerOptimizer.Kind.fedAvg, .fedAvgM, .fedAdam, .fedYogi,
        ])
    func optimizerInPlace(kind: ServerOptimizer.Kind) throws {
        let global = set([("w", [1, -1, 0.25]), ("b", [3])])
        let deltas = [set([("w", [0.5, -0.25, 0.125]), ("b", [1])]), set([("w", [-0.5, 0.75, 0]), ("b", [-2])])]
        var copying = ServerOptimizer(kind: kind, learningRate: 0.5, beta1: 0.9, beta2: 0.99, tau: 1e-3)
        var inPlace = copying
        var x = global
        var y = try global.adding(global.zeros())
        for d in deltas {
            x = try copying.step(global: x, delta: d)
            try inPlace.apply(to: &y, delta: d)
        }
        #expect(x == y)
        #expect(copying == inPlace)
    }
}
