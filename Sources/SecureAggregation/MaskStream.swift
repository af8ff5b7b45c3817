import Crypto
import Foundation

/// A mask over Z/2³² of any length, expanded from a 32-byte seed: the ChaCha20 keystream (RFC 8439, through
/// swift-crypto's ChaCha20-Poly1305 over zeros) read as little-endian 32-bit words. Word p of the mask is word
/// p mod `blockWords` of the keystream under nonce ⌊p / `blockWords`⌋, so any range can be produced on its own, in
/// any order (chunks of a streamed vector), and both ends of a pair produce the same words.
///
/// Limits: positions below 2³² · `blockWords` (far beyond any model). One block (`blockWords` words) is cached.
public struct MaskStream: Sendable {
    /// Words per keystream block (one nonce): 64 KiB.
    public static let blockWords = 16_384

    private let key: SymmetricKey
    private var cachedBlock: Int = -1
    private var cache: [UInt32] = []

    /// - Parameter seed: 32 bytes (a pairwise key from HKDF, or a self-mask seed).
    /// - Throws: `.invalidParameters` for a seed of another length.
    public init(seed: [UInt8]) throws(SecureAggregationError) {
        guard seed.count == 32 else {
            throw SecureAggregationError(.invalidParameters, "a mask seed has 32 bytes, not \(seed.count)")
        }
        key = SymmetricKey(data: seed)
    }

    private mutating func block(_ index: Int) throws(SecureAggregationError) -> [UInt32] {
        if index == cachedBlock { return cache }
        var nonceBytes = [UInt8](repeating: 0, count: 12)
        var n = UInt64(index)
        for i in 0..<8 {
            nonceBytes[i] = UInt8(truncatingIfNeeded: n)
            n >>= 8
        }
        let zeros = Data(count: Self.blockWords * 4)
        let stream: Data
        do {
            let nonce = try ChaChaPoly.Nonce(data: nonceBytes)
            stream = try ChaChaPoly.seal(zeros, using: key, nonce: nonce).ciphertext
        } catch {
            throw SecureAggregationError(.invalidParameters, "the mask keystream could not be produced", cause: error)
        }
        var words = [UInt32](repeating: 0, count: Self.blockWords)
        stream.withUnsafeBytes { raw in
            for i in 0..<Self.blockWords {
                words[i] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            }
        }
        cachedBlock = index
        cache = words
        return words
    }

    /// Adds (or subtracts, `negate`) mask words `position ..< position + words.count` into `words`, modulo 2³².
    public mutating func apply(
        to words: UnsafeMutableBufferPointer<UInt32>, at position: Int, negate: Bool
    ) throws(SecureAggregationError) {
        var done = 0
        while done < words.count {
            let p = position + done
            let b = p / Self.blockWords
            let start = p % Self.blockWords
            let n = min(Self.blockWords - start, words.count - done)
            let mask = try block(b)
            if negate {
                for i in 0..<n { words[done + i] &-= mask[start + i] }
            } else {
                for i in 0..<n { words[done + i] &+= mask[start + i] }
            }
            done += n
        }
    }

    /// Mask words `position ..< position + count`.
    public mutating func words(at position: Int, count: Int) throws(SecureAggregationError) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: count)
        // The closure works on a copy, not on `self` (see `SecAggSiteSession.addMasks`).
        var stream = self
        try out.withUnsafeMutableBufferPointer { (buffer) throws(SecureAggregationError) in
            try stream.apply(to: buffer, at: position, negate: false)
        }
        self = stream
        return out
    }
}

/// Fixed-point encoding of a weighted, clipped update into Z/2³² where the masks cancel.
///
/// Each value is clipped to [−`clipRange`, `clipRange`], multiplied by the site's weight w ∈ [0, 1], and rounded to
/// a multiple of 1/`scale` with scale = ⌊(2³¹ − 1) / (n · max(`clipRange`, 1))⌋ for n participants, so the sum of n
/// such words (and of n weights) never wraps. Error: each encoded value is within 1/(2·scale) of w·clip(x); a sum of n
/// is within n/(2·scale); the weighted mean Σwᵢxᵢ / Σwᵢ adds the same relative error of Σwᵢ.
public struct RingQuantizer: Sendable, Equatable {
    public let clipRange: Double
    public let participants: Int
    public let scale: Double

    /// - Throws: `.invalidParameters` unless 0 < clipRange ≤ 10⁶ and 1 ≤ participants ≤ `Shamir.maxShares`.
    public init(clipRange: Double, participants: Int) throws(SecureAggregationError) {
        guard clipRange.isFinite, clipRange > 0, clipRange <= 1e6 else {
            throw SecureAggregationError(.invalidParameters, "clip range \(clipRange): need 0 < clip range ≤ 1e6")
        }
        guard participants >= 1, participants <= Shamir.maxShares else {
            throw SecureAggregationError(
                .invalidParameters, "\(participants) participants: need 1…\(Shamir.maxShares)")
        }
        self.clipRange = clipRange
        self.participants = participants
        self.scale = (Double(Int32.max) / (Double(participants) * max(clipRange, 1))).rounded(.down)
    }

    /// The word for w·clip(x), w clamped to [0, 1]; a NaN value or weight encodes as 0.
    @inline(__always) public func encode(_ x: Float, weight: Double) -> UInt32 {
        let v = Double(x)
        let clipped = v.isNaN ? 0 : min(max(v, -clipRange), clipRange)
        let w = weight.isNaN ? 0 : min(max(weight, 0), 1)
        let q = (clipped * w * scale).rounded()
        return UInt32(bitPattern: Int32(q))
    }

    /// A sum of at most `participants` words as a real number.
    @inline(__always) public func decode(_ word: UInt32) -> Double {
        Double(Int32(bitPattern: word)) / scale
    }

    /// The largest |decoded sum| honest participants can produce: n · max(clipRange, 1).
    public var sumBound: Double { Double(participants) * max(clipRange, 1) }

    /// Bound on the error of a decoded sum of n words: n / (2·scale).
    public var sumError: Double { Double(participants) / (2 * scale) }
}
