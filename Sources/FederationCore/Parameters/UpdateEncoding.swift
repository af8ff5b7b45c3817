/// How the values of a weight diff travel from a site to the server: the pipeline's `federation.compression`.
///
/// Each encoding, with the error of one value x (before error feedback, `UpdateCompressor`):
/// - `float32`: 4 bytes per value, exact.
/// - `float16`: IEEE 754 binary16, 2 bytes, round to nearest even. |x| in the normal range [2⁻¹⁴, 65504]: relative
///   error ≤ 2⁻¹¹; below it (subnormals) absolute error ≤ 2⁻²⁵; beyond ±65504 the value is saturated to ±65504.
/// - `bfloat16`: the upper half of binary32, 2 bytes, round to nearest even: relative error ≤ 2⁻⁸ (float32's range).
/// - `int8Blocks(blockSize:)`: per block of `blockSize` consecutive values of a chunk (the last one may be shorter),
///   scale s = max|x| / 127 as float32 and codes q = round(x / s) in −127 … 127; x̂ = q · s, |x − x̂| ≤ s / 2.
///   Symmetric: no offset, so a block's zero stays exactly zero. 1 + 4 / blockSize bytes per value.
public enum UpdateEncoding: Sendable, Equatable, Hashable {
    case float32
    case float16
    case bfloat16
    case int8Blocks(blockSize: Int)

    /// The default block of `int8`: 256 values (1.6 % overhead for the scales).
    public static let defaultBlockSize = 256
    /// Allowed block sizes of `int8` (pipeline `federation.compression_block_size`, and what the server accepts).
    public static let blockSizes = 16...65_536

    /// The pipeline's name: none | fp16 | bf16 | int8.
    public var name: String {
        switch self {
        case .float32: "none"
        case .float16: "fp16"
        case .bfloat16: "bf16"
        case .int8Blocks: "int8"
        }
    }

    public static let names = ["none", "fp16", "bf16", "int8"]

    /// The encoding of a pipeline name; `blockSize` applies to `int8` only.
    /// - Throws: `.invalidConfiguration` for another name or a block size outside `blockSizes`.
    public init(name: String, blockSize: Int = UpdateEncoding.defaultBlockSize) throws(FederationError) {
        switch name {
        case "none": self = .float32
        case "fp16": self = .float16
        case "bf16": self = .bfloat16
        case "int8":
            guard Self.blockSizes.contains(blockSize) else {
                throw FederationError(
                    .invalidConfiguration,
                    "an int8 block of \(blockSize) values: use "
                        + "\(Self.blockSizes.lowerBound)...\(Self.blockSizes.upperBound)")
            }
            self = .int8Blocks(blockSize: blockSize)
        default:
            throw FederationError(
                .invalidConfiguration,
                "unknown update encoding '\(name.prefix(32))': use \(Self.names.joined(separator: ", "))")
        }
    }

    /// Task configuration keys that tell a site how to encode its update (set by the server from the pipeline).
    public static let configKey = "update_encoding"
    public static let blockSizeConfigKey = "update_encoding_block_size"

    /// The entries a training task carries (none for `float32`: a site that is told nothing sends float32).
    public var taskConfig: [String: ConfigValue] {
        switch self {
        case .float32: [:]
        case .int8Blocks(let b): [Self.configKey: .string(name), Self.blockSizeConfigKey: .int(b)]
        default: [Self.configKey: .string(name)]
        }
    }

    /// The encoding a task asks for (`float32` when it names none).
    /// - Throws: `.invalidConfiguration` for an unknown name or block size (a server newer than the site).
    public init(taskConfig config: [String: ConfigValue]) throws(FederationError) {
        guard let value = config[Self.configKey] else {
            self = .float32
            return
        }
        guard case .string(let name) = value else {
            throw FederationError(.invalidConfiguration, "the task's \(Self.configKey) is not a name")
        }
        var block = Self.defaultBlockSize
        if let b = config[Self.blockSizeConfigKey] {
            guard case .int(let i) = b else {
                throw FederationError(.invalidConfiguration, "the task's \(Self.blockSizeConfigKey) is not an integer")
            }
            block = i
        }
        try self.init(name: name, blockSize: block)
    }

    /// Bytes of `count` values in this encoding (as one chunk: blocks start at the chunk's first value).
    /// `count` must be ≥ 0 and small enough not to overflow (a chunk's value count).
    public func byteCount(values count: Int) -> Int {
        switch self {
        case .float32: 4 * count
        case .float16, .bfloat16: 2 * count
        case .int8Blocks(let b): count + 4 * ((count + b - 1) / b)
        }
    }

    /// The wire code (federation.proto's `ValueEncoding`).
    public var wireCode: Int {
        switch self {
        case .float32: 0
        case .float16: 1
        case .bfloat16: 2
        case .int8Blocks: 3
        }
    }

    /// The encoding of a wire code and block size (untrusted).
    /// - Throws: `.invalidConfiguration` for an unknown code or a block size outside `blockSizes`.
    public init(wireCode: Int, blockSize: Int) throws(FederationError) {
        switch wireCode {
        case 0: self = .float32
        case 1: self = .float16
        case 2: self = .bfloat16
        case 3:
            guard Self.blockSizes.contains(blockSize) else {
                throw FederationError(
                    .invalidConfiguration,
                    "int8 chunk with a block of \(blockSize) values (at least \(Self.blockSizes.lowerBound), at most "
                        + "\(Self.blockSizes.upperBound))")
            }
            self = .int8Blocks(blockSize: blockSize)
        default:
            throw FederationError(.invalidConfiguration, "chunk in an unknown value encoding (code \(wireCode))")
        }
    }
}

/// `count` values of a chunk in an `UpdateEncoding` other than float32, as they travel: fp16/bf16 as 2-byte
/// little-endian words; int8 block after block, each its float32 scale (little-endian) then its codes (so a run of
/// whole blocks is one contiguous byte range, and a chunk can be cut at block boundaries without copying).
///
/// Every instance is valid: made by encoding float values at the site (`init(encoding:values:)`), or checked with
/// `init(encoding:count:bytes:maxCount:)` (sizes, finite non-negative scales) when it comes from outside.
public struct EncodedValues: Sendable, Equatable {
    public let encoding: UpdateEncoding
    /// Number of values.
    public let count: Int
    /// The encoded bytes (exactly `encoding.byteCount(values: count)`).
    public let bytes: ArraySlice<UInt8>

    /// Checks bytes from outside before anything is allocated for them: `count` within 1 … `maxCount`, byte length
    /// exactly the encoding's for `count`, every int8 scale finite and ≥ 0.
    /// - Throws: `.tooLarge` for a count above `maxCount`; `.shapeMismatch` for a byte length that does not match
    ///   the count; `.nonFinite` for a NaN, infinite or negative scale.
    public static func check(
        encoding: UpdateEncoding, count: Int, bytes: UnsafeRawBufferPointer, maxCount: Int
    ) throws(FederationError) {
        guard encoding != .float32 else {
            throw FederationError(.invalidConfiguration, "float32 values travel unencoded, not as encoded values")
        }
        guard count >= 1, count <= maxCount else {
            throw FederationError(
                .tooLarge, "an encoded chunk declares \(count) values (at least 1, at most \(maxCount) per chunk)")
        }
        let expected = encoding.byteCount(values: count)
        guard bytes.count == expected else {
            throw FederationError(
                .shapeMismatch,
                "an encoded chunk of \(count) \(encoding.name) values is \(bytes.count) long, not \(expected): "
                    + "truncated or padded, it does not fit the shape it declares")
        }
        guard case .int8Blocks(let b) = encoding else { return }
        var at = 0
        while at < bytes.count {
            let scale = Float(
                bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            guard scale.isFinite, scale >= 0 else {
                throw FederationError(
                    .nonFinite,
                    "an int8 chunk's block \(at / (b + 4)) has scale \(scale); scales must be finite and ≥ 0")
            }
            at += 4 + b
        }
    }

    /// Encoded values from outside, checked by `check` first (so a hostile count allocates nothing).
    /// - Throws: as `check`.
    public init(
        encoding: UpdateEncoding, count: Int, bytes: UnsafeRawBufferPointer, maxCount: Int
    ) throws(FederationError) {
        try Self.check(encoding: encoding, count: count, bytes: bytes, maxCount: maxCount)
        self.encoding = encoding
        self.count = count
        self.bytes = Array(bytes)[...]
    }

    /// Encoded values from outside already in an array (kept, not copied), checked by `check`.
    /// - Throws: as `check`.
    public init(
        encoding: UpdateEncoding, count: Int, bytes: ArraySlice<UInt8>, maxCount: Int
    ) throws(FederationError) {
        var failure: FederationError?
        bytes.withUnsafeBytes { raw in
            do throws(FederationError) {
                try Self.check(encoding: encoding, count: count, bytes: raw, maxCount: maxCount)
            } catch { failure = error }
        }
        if let failure { throw failure }
        self.encoding = encoding
        self.count = count
        self.bytes = bytes
    }

    /// Encodes `values` (finite; the site's released diff). fp16 saturates at ±65504 and bf16 at ±(2 − 2⁻⁷)·2¹²⁷, so
    /// no finite value becomes infinite.
    public init(encoding: UpdateEncoding, values: UnsafeBufferPointer<Float>) {
        precondition(encoding != .float32, "float32 values travel unencoded")
        self.encoding = encoding
        self.count = values.count
        var out = [UInt8](repeating: 0, count: encoding.byteCount(values: values.count))
        out.withUnsafeMutableBytes { raw in
            switch encoding {
            case .float32: break
            case .float16:
                for i in values.indices {
                    raw.storeBytes(
                        of: HalfPrecision.float16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .bfloat16:
                for i in values.indices {
                    raw.storeBytes(
                        of: HalfPrecision.bfloat16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .int8Blocks(let b):
                var start = 0
                var at = 0
                while start < values.count {
                    let block = UnsafeBufferPointer(rebasing: values[start..<min(start + b, values.count)])
                    let scale = Self.encodeBlock(block, into: UnsafeMutableRawBufferPointer(rebasing: raw[(at + 4)...]))
                    raw.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                    at += 4 + block.count
                    start += block.count
                }
            }
        }
        self.bytes = out[...]
    }

    /// Encodes y = `values` + `residual` in int8 blocks and leaves in `residual` what the encoding loses,
    /// e ← y − ŷ (error feedback, `UpdateCompressor`): the bytes and the residual `init(encoding:values:)` on y then
    /// `decode` would give, in two passes over each block while it is in L1 instead of five over the chunk.
    /// `values` (finite) and `residual` have the same count.
    public init(
        int8Blocks blockSize: Int, values: UnsafeBufferPointer<Float>, residual: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(values.count == residual.count && UpdateEncoding.blockSizes.contains(blockSize))
        let encoding = UpdateEncoding.int8Blocks(blockSize: blockSize)
        self.encoding = encoding
        self.count = values.count
        var out = [UInt8](repeating: 0, count: encoding.byteCount(values: values.count))
        out.withUnsafeMutableBytes { raw in
            var start = 0
            var at = 0
            while start < values.count {
                let n = min(blockSize, values.count - start)
                let x = UnsafeBufferPointer(rebasing: values[start..<(start + n)])
                let e = UnsafeMutableBufferPointer(rebasing: residual[start..<(start + n)])
                for i in 0..<n { e[i] += x[i] }  // y, in place
                let scale = Self.encodeBlock(
                    UnsafeBufferPointer(e), into: UnsafeMutableRawBufferPointer(rebasing: raw[(at + 4)...]))
                raw.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                for i in 0..<n { e[i] -= Float(Int8(bitPattern: raw[at + 4 + i])) * scale }  // e = y − ŷ
                at += 4 + n
                start += n
            }
        }
        self.bytes = out[...]
    }

    /// A copy of bytes already checked (`WireValues`).
    init(checked encoding: UpdateEncoding, count: Int, bytes: UnsafeRawBufferPointer) {
        self.init(encoding: encoding, count: count, slice: Array(bytes)[...])
    }

    private init(encoding: UpdateEncoding, count: Int, slice: ArraySlice<UInt8>) {
        self.encoding = encoding
        self.count = count
        self.bytes = slice
    }

    /// One int8 block: writes its codes, returns its scale (max|x| / 127; 0 for a block of zeros). `x` is finite.
    private static func encodeBlock(_ x: UnsafeBufferPointer<Float>, into codes: UnsafeMutableRawBufferPointer) -> Float
    {
        // Branch-free loops (they vectorise on the x86-64 baseline; `rounded(_:)` was a call to rintf per value).
        // max|x| as the largest magnitude bit pattern (IEEE 754 orders finite magnitudes as their bits): an integer
        // maximum is associative, so it vectorises; a float one is not (NaN), and ran one value per FMA latency.
        var largest: UInt32 = 0
        for v in x { largest = max(largest, v.bitPattern & 0x7fff_ffff) }
        let maxAbs = Float(bitPattern: largest)
        let scale = maxAbs / 127
        guard scale > 0 else { return 0 }  // zeros stay 0 (codes are zero-filled)
        let inverse = 127 / maxAbs
        if inverse.isFinite {
            // t = x · 127/max|x| is within ±127 up to rounding: clamped to ±127 first (the bounds are integers, so
            // this equals clamping the rounded code), then rounded to nearest even by adding 1.5 · 2²³, which leaves
            // the integer in the low mantissa bits (two's complement for negative t): the code is the low byte.
            let magic: Float = 0x1.8p23
            for i in x.indices {
                let t = x[i] * inverse
                let c = t < -127 ? -127 : (t > 127 ? 127 : t)
                codes[i] = UInt8(truncatingIfNeeded: (c + magic).bitPattern)
            }
        } else {
            // max|x| subnormal: 127 / max|x| overflows in float32.
            for i in x.indices {
                let q = (Double(x[i]) / Double(scale)).rounded(.toNearestOrEven)
                codes[i] = UInt8(bitPattern: Int8(max(-127, min(127, q))))
            }
        }
        return scale
    }

    /// The values `range` (of 0 ..< count) as their own encoded values, sharing these bytes (no copy). For int8 the
    /// range must start on a block boundary (a multiple of the block size).
    public func piece(_ range: Range<Int>) -> EncodedValues {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        let start: Int
        switch encoding {
        case .float32: preconditionFailure("float32 values travel unencoded")
        case .float16, .bfloat16: start = 2 * range.lowerBound
        case .int8Blocks(let b):
            precondition(range.lowerBound % b == 0, "an int8 piece starts on a block boundary")
            start = encoding.byteCount(values: range.lowerBound)
        }
        let length = encoding.byteCount(values: range.count)
        let base = bytes.startIndex + start
        return EncodedValues(encoding: encoding, count: range.count, slice: bytes[base..<(base + length)])
    }

    /// Decodes into `out` (exactly `count` values), straight from the bytes.
    public func decode(into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == count)
        bytes.withUnsafeBytes { ValueKernels.decode(encoding, count: count, raw: $0, into: out) }
    }

    /// Appends the decoded values to `out` (its capacity grows at most once).
    public func appendDecoded(to out: inout [Float]) {
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

    /// `out[i] += xᵢ` for the decoded values (`out` holds exactly `count`): the same arithmetic, rounding for
    /// rounding, as `WireValues.add(scaledBy: 1, to:)` on the same bytes — the server and a site applying a model
    /// change both come to the same model, bit for bit.
    public func add(to out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == count)
        guard let o = out.baseAddress else { return }
        bytes.withUnsafeBytes { ValueKernels.add(encoding, count: count, raw: $0, weight: 1, to: o) }
    }
}

/// IEEE 754 binary16 and bfloat16 conversions in integer arithmetic, round to nearest even (the same on every
/// platform, with or without a native Float16). After F. Giesen's `float_to_half_fast3_rtne` / `half_to_float`.
enum HalfPrecision {
    /// Largest finite binary16 value.
    static let float16Max: Float = 65504
    /// Largest finite bfloat16 value, (2 − 2⁻⁷) · 2¹²⁷.
    static let bfloat16Max = Float(bitPattern: 0x7F7F_0000)

    /// binary16 bits of x, finite values saturated at ±65504 (NaN becomes a quiet NaN).
    static func float16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits & 0x8000_0000) >> 16)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 { return sign | 0x7E00 }  // NaN
        if magnitude >= 0x477F_E000 { return sign | 0x7BFF }  // rounds to ≥ 65520 (or ±Inf): saturated to 65504
        if magnitude < 0x3880_0000 {
            // Below 2⁻¹⁴: subnormal or zero. Adding 0.5 aligns the value's bits so that the float adder rounds
            // (to nearest even) at binary16's subnormal spacing 2⁻²⁴.
            let magic = Float(bitPattern: 0x3F00_0000)  // 0.5
            let sum = Float(bitPattern: magnitude) + magic
            return sign | UInt16(truncatingIfNeeded: sum.bitPattern &- magic.bitPattern)
        }
        let odd = (magnitude >> 13) & 1
        var m = magnitude &+ 0xC800_0000  // rebias the exponent: (15 − 127) << 23, wrapping
        m = m &+ 0xFFF &+ odd
        return sign | UInt16(truncatingIfNeeded: m >> 13)
    }

    /// The float value of binary16 bits.
    static func float(float16 h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h & 0x7C00)
        let mantissa = UInt32(h & 0x03FF)
        if exponent == 0x7C00 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            // Subnormal or zero: mantissa · 2⁻²⁴, exact in float32.
            let v = Float(mantissa) * Float(bitPattern: 0x3380_0000)
            return sign == 0 ? v : -v
        }
        return Float(bitPattern: sign | (((exponent >> 10) + 112) << 23) | (mantissa << 13))
    }

    /// bfloat16 bits of x, finite values saturated at ±bfloat16Max (NaN stays a quiet NaN).
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        if x.magnitude > bfloat16Max {
            return UInt16(truncatingIfNeeded: (bits & 0x8000_0000) >> 16) | 0x7F7F
        }
        // |x| ≤ bfloat16Max here, so rounding never reaches ±Inf.
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }
}
