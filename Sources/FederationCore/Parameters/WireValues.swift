/// Bytes a chunk's values arrived in (a received message), read in place: the transport's buffer, or an array.
public protocol WireBytes: Sendable {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: WireBytes where Element == UInt8 {}

/// A chunk's values still in the message they arrived in (no copy): `count` float32 values as little-endian words,
/// or an `EncodedValues` layout (fp16/bf16 words, int8 blocks). The server checks, and adds into its sums, straight
/// from these bytes (`StreamingAccumulator`): no per-chunk array.
///
/// Every instance is checked when made (`init(encoding:count:storage:range:maxCount:)`): the byte range lies in
/// the storage and is exactly the encoding's length for `count`; an encoded chunk passes `EncodedValues.check`
/// (1 … `maxCount` values, int8 scales finite and ≥ 0). The storage must not change while the instance lives.
public struct WireValues: Sendable, Equatable {
    public let encoding: UpdateEncoding
    /// Number of values.
    public let count: Int
    private let storage: any WireBytes
    private let range: Range<Int>

    /// Values in `storage[range]` from outside, checked before anything is read or allocated.
    /// - Throws: `.shapeMismatch` for a range outside the storage or a float32 byte count that is not `4 · count`;
    ///   for an encoded chunk, what `EncodedValues.check` refuses.
    public init(
        encoding: UpdateEncoding, count: Int, storage: some WireBytes, range: Range<Int>, maxCount: Int
    ) throws(FederationError) {
        var failure: FederationError?
        storage.withUnsafeBytes { raw in
            do throws(FederationError) {
                guard range.lowerBound >= 0, range.upperBound <= raw.count else {
                    throw FederationError(.shapeMismatch, "values outside their message")
                }
                let bytes = UnsafeRawBufferPointer(rebasing: raw[range])
                if encoding == .float32 {
                    guard count >= 0, count <= bytes.count / 4, bytes.count == 4 * count else {
                        throw FederationError(
                            .shapeMismatch, "\(bytes.count) bytes are not \(count) float32 values")
                    }
                } else {
                    try EncodedValues.check(encoding: encoding, count: count, bytes: bytes, maxCount: maxCount)
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        self.encoding = encoding
        self.count = count
        self.storage = storage
        self.range = range
    }

    /// The values' bytes, exactly `encoding.byteCount(values: count)` of them.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[range])) }
    }

    /// Whether every value is within ±`bound` (`|x| ≤ bound`: NaN never is, ±Inf only for an infinite bound),
    /// checked on the bytes: exactly what checking the decoded values would say.
    public func allWithin(_ bound: Float) -> Bool {
        withUnsafeBytes { ValueKernels.allWithin(encoding, count: count, raw: $0, bound: bound) }
    }

    /// `out[i] += weight · xᵢ` for every value (`out` holds at least `count`): as adding the decoded values would,
    /// rounding for rounding.
    public func add(scaledBy weight: Float, to out: UnsafeMutablePointer<Float>) {
        withUnsafeBytes { ValueKernels.add(encoding, count: count, raw: $0, weight: weight, to: out) }
    }

    /// Decodes into `out` (exactly `count` values).
    public func decode(into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == count)
        withUnsafeBytes { ValueKernels.decode(encoding, count: count, raw: $0, into: out) }
    }

    /// Appends the decoded values to `out` (its capacity grows at most once; float32 values are copied in one pass).
    public func appendDecoded(to out: inout [Float]) {
        #if _endian(little)
            if encoding == .float32 {
                withUnsafeBytes { raw in
                    if let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                        raw.withMemoryRebound(to: Float.self) { out.append(contentsOf: $0) }
                    } else {
                        out.reserveCapacity(out.count + count)
                        for i in 0..<count {
                            out.append(Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                        }
                    }
                }
                return
            }
        #endif
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBufferPointer { decode(into: UnsafeMutableBufferPointer(rebasing: $0[start...])) }
    }

    /// The decoded values in a new array.
    public func decoded() -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count)
        appendDecoded(to: &out)
        return out
    }

    public static func == (a: WireValues, b: WireValues) -> Bool {
        a.encoding == b.encoding && a.count == b.count
            && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
    }
}

extension ParameterChunk {
    /// A chunk whose values are still in their message.
    public init(tensor: String, shape: [Int], offset: Int, inMessage: WireValues) {
        self.init(tensor: tensor, shape: shape, offset: offset, values: [Float]())
        self.inMessage = inMessage
    }

    /// The chunk with values of its own: a chunk still in its message (`inMessage`) copied out, float32 into `values`,
    /// encoded ones into `encoded`; any other chunk as it is. For the consumers that keep or read values as arrays.
    public func materialized() -> ParameterChunk {
        guard let wire = inMessage else { return self }
        if wire.encoding == .float32 {
            return ParameterChunk(tensor: tensor, shape: shape, offset: offset, values: wire.decoded())
        }
        let encoded = wire.withUnsafeBytes { EncodedValues(checked: wire.encoding, count: wire.count, bytes: $0) }
        return ParameterChunk(tensor: tensor, shape: shape, offset: offset, encoded: encoded)
    }
}

/// The loops over values in their wire bytes (little-endian float32 words or an `EncodedValues` layout), written
/// branch-free so that they vectorise. The bytes are trusted to be `encoding.byteCount(values: count)` long (and,
/// for int8, scales finite and ≥ 0): `WireValues` and `EncodedValues` check them first.
enum ValueKernels {
    static func allWithin(_ encoding: UpdateEncoding, count: Int, raw: UnsafeRawBufferPointer, bound: Float) -> Bool {
        guard count > 0, let p = raw.baseAddress else { return true }
        // IEEE 754 orders magnitudes as their bit patterns without the sign bit (and every NaN above infinity), for
        // float32, float16 and bfloat16 alike: the largest magnitude pattern decides for every value, found with an
        // integer maximum (branch-free, so it vectorises; a short-circuit test per value did not).
        switch encoding {
        case .float32:
            var largest: UInt32 = 0
            for i in 0..<count {
                largest = max(
                    largest, UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) & 0x7fff_ffff
                )
            }
            return Float(bitPattern: largest) <= bound
        case .float16:
            var largest: UInt16 = 0
            for i in 0..<count { largest = max(largest, word(p, i) & 0x7fff) }
            return HalfPrecision.float(float16: largest) <= bound
        case .bfloat16:
            var largest: UInt16 = 0
            for i in 0..<count { largest = max(largest, word(p, i) & 0x7fff) }
            return bfloat16(largest) <= bound
        case .int8Blocks(let b):
            // |q · s| grows with |q| (rounding is monotone, the product sign-symmetric): the block's largest code
            // decides for all of it.
            var bad = false
            forEachBlock(b, count: count, p) { scale, codes, n in
                var largest: UInt8 = 0
                for i in 0..<n { largest = max(largest, Int8(bitPattern: codes[i]).magnitude) }
                bad = bad || !((Float(largest) * scale).magnitude <= bound)
            }
            return !bad
        }
    }

    static func add(
        _ encoding: UpdateEncoding, count: Int, raw: UnsafeRawBufferPointer, weight w: Float,
        to out: UnsafeMutablePointer<Float>
    ) {
        guard count > 0, let p = raw.baseAddress else { return }
        switch encoding {
        case .float32:
            for i in 0..<count { out[i] += w * float32(p, i) }
        case .float16:
            for i in 0..<count { out[i] += w * HalfPrecision.float(float16: word(p, i)) }
        case .bfloat16:
            for i in 0..<count { out[i] += w * bfloat16(word(p, i)) }
        case .int8Blocks(let b):
            var start = 0
            forEachBlock(b, count: count, p) { scale, codes, n in
                let o = out + start
                for i in 0..<n { o[i] += w * (Float(Int8(bitPattern: codes[i])) * scale) }
                start += n
            }
        }
    }

    static func decode(
        _ encoding: UpdateEncoding, count: Int, raw: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>
    ) {
        guard count > 0, let p = raw.baseAddress, let o = out.baseAddress else { return }
        switch encoding {
        case .float32:
            for i in 0..<count { o[i] = float32(p, i) }
        case .float16:
            for i in 0..<count { o[i] = HalfPrecision.float(float16: word(p, i)) }
        case .bfloat16:
            for i in 0..<count { o[i] = bfloat16(word(p, i)) }
        case .int8Blocks(let b):
            var start = 0
            forEachBlock(b, count: count, p) { scale, codes, n in
                for i in 0..<n { o[start + i] = Float(Int8(bitPattern: codes[i])) * scale }
                start += n
            }
        }
    }

    @inline(__always)
    private static func float32(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
    }

    @inline(__always)
    private static func word(_ p: UnsafeRawPointer, _ i: Int) -> UInt16 {
        UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    }

    @inline(__always)
    private static func bfloat16(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Each int8 block in order: its scale, its codes and how many there are.
    @inline(__always)
    private static func forEachBlock(
        _ b: Int, count: Int, _ p: UnsafeRawPointer, _ body: (Float, UnsafePointer<UInt8>, Int) -> Void
    ) {
        var start = 0
        var at = 0
        while start < count {
            let n = min(b, count - start)
            let scale = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            body(scale, (p + at + 4).assumingMemoryBound(to: UInt8.self), n)
            at += 4 + n
            start += n
        }
    }
}
