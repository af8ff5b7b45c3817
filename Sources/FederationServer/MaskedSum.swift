import FederationCore

/// The running sum over Z/2³² of the sites' masked vectors in a secure-aggregation round: the global model's tensors
/// in its order, then one word for the sites' weights (`SecureAggregationStage.weightTensor`). A masked chunk's
/// float32 values carry ring words bit for bit (`Float(bitPattern:)`); nothing is checked about their values, which
/// look uniformly random.
///
/// Resumable: each site's tensors must arrive in order, and a value already added (a chunk sent again after a broken
/// stream: the same session gives the same words) is skipped, so a site resends its whole vector and only the
/// missing tail is added. A site is complete when every word arrived; one that stops part-way leaves words in the
/// sum that cannot be taken out, and the round's attempt is retried with new keys.
///
/// Memory: one word per parameter, plus a counter per (site, tensor). The server never holds one site's vector.
struct MaskedSum: Sendable {
    private struct Slot: Sendable {
        var name: String
        var shape: [Int]
        var start: Int
        var count: Int
    }

    private let slots: [Slot]
    private let index: [String: Int]
    private(set) var words: [UInt32]
    /// Words received per site and tensor.
    private var progress: [String: [Int]] = [:]

    init(structure: ParameterSet) {
        var slots: [Slot] = []
        var start = 0
        for tensor in structure.tensors {
            slots.append(Slot(name: tensor.name, shape: tensor.shape, start: start, count: tensor.count))
            start += tensor.count
        }
        slots.append(Slot(name: SecureAggregationStage.weightTensor, shape: [1], start: start, count: 1))
        self.slots = slots
        var index: [String: Int] = [:]
        for (i, slot) in slots.enumerated() { index[slot.name] = i }
        self.index = index
        words = [UInt32](repeating: 0, count: start + 1)
    }

    /// Adds a chunk's words that `site` has not sent before.
    /// - Throws: `.shapeMismatch` for an unknown tensor, another shape, a gap or values past the tensor's end.
    mutating func add(_ chunk: ParameterChunk, from site: String) throws(FederationError) {
        guard let t = index[chunk.tensor], slots[t].shape == chunk.shape else {
            throw FederationError(
                .shapeMismatch,
                "masked chunk of \(site) names tensor \(chunk.tensor) \(chunk.shape), which the model does not have")
        }
        let slot = slots[t]
        var received = progress[site] ?? [Int](repeating: 0, count: slots.count)
        let end = chunk.offset + chunk.values.count
        guard chunk.offset >= 0, chunk.offset <= received[t], end <= slot.count else {
            throw FederationError(
                .shapeMismatch,
                "masked chunk of \(site) for \(chunk.tensor) at \(chunk.offset)..<\(end): expected the next value at "
                    + "\(received[t]) of \(slot.count)")
        }
        let skip = received[t] - chunk.offset
        if skip < chunk.values.count {
            let base = slot.start + chunk.offset
            var i = chunk.values.startIndex + skip
            var p = base + skip
            while i < chunk.values.endIndex {
                words[p] &+= chunk.values[i].bitPattern
                i += 1
                p += 1
            }
            received[t] = end
        }
        progress[site] = received
    }

    /// True once every word of `site`'s vector was added.
    func isComplete(_ site: String) -> Bool {
        guard let received = progress[site] else { return false }
        return zip(received, slots).allSatisfy { $0 == $1.count }
    }

    /// Sites that added some words but not all.
    var partial: [String] { progress.keys.filter { !isComplete($0) }.sorted() }

    /// Moves the sum out (the sum is empty afterwards): no copy of a model-sized array.
    mutating func takeWords() -> [UInt32] {
        var out: [UInt32] = []
        swap(&out, &words)
        progress = [:]
        return out
    }

    /// A parameter set shaped like the model from `words` (one per value, the weight word last): value i is
    /// `decode(words[i])`, each tensor written once.
    func parameters(_ words: [UInt32], decode: (UInt32) -> Float) -> ParameterSet {
        ParameterSet(
            slots.dropLast().map { slot in
                ParameterTensor(
                    name: slot.name, shape: slot.shape,
                    values: [Float](unsafeUninitializedCapacity: slot.count) { out, n in
                        for i in 0..<slot.count { out[i] = decode(words[slot.start + i]) }
                        n = slot.count
                    })
            })
    }
}
