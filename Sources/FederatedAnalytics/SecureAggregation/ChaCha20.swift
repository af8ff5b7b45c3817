/// The ChaCha20 block function (RFC 8439 §2.3), used as the keyed stream cipher that expands a 32-byte pairwise
/// key into a mask of any length. Only the keystream is needed: nothing is encrypted with it.
struct ChaCha20 {
    private var state: [UInt32]

    /// - Parameters: key: 32 bytes; nonce: 12 bytes.
    init(key: [UInt8], nonce: [UInt8], counter: UInt32 = 0) {
        precondition(key.count == 32 && nonce.count == 12, "ChaCha20 needs a 32-byte key and a 12-byte nonce")
        func word(_ b: [UInt8], _ i: Int) -> UInt32 {
            UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
        }
        state = [0x6170_7865, 0x3320_646E, 0x7962_2D32, 0x6B20_6574]
        for i in 0..<8 { state.append(word(key, 4 * i)) }
        state.append(counter)
        for i in 0..<3 { state.append(word(nonce, 4 * i)) }
    }

    @inline(__always) private static func quarterRound(_ x: inout [UInt32], _ a: Int, _ b: Int, _ c: Int, _ d: Int) {
        x[a] &+= x[b]
        x[d] ^= x[a]
        x[d] = (x[d] << 16) | (x[d] >> 16)
        x[c] &+= x[d]
        x[b] ^= x[c]
        x[b] = (x[b] << 12) | (x[b] >> 20)
        x[a] &+= x[b]
        x[d] ^= x[a]
        x[d] = (x[d] << 8) | (x[d] >> 24)
        x[c] &+= x[d]
        x[b] ^= x[c]
        x[b] = (x[b] << 7) | (x[b] >> 25)
    }

    /// The next 64-byte block as 16 little-endian words; advances the block counter.
    mutating func nextBlock() -> [UInt32] {
        var x = state
        for _ in 0..<10 {
            Self.quarterRound(&x, 0, 4, 8, 12)
            Self.quarterRound(&x, 1, 5, 9, 13)
            Self.quarterRound(&x, 2, 6, 10, 14)
            Self.quarterRound(&x, 3, 7, 11, 15)
            Self.quarterRound(&x, 0, 5, 10, 15)
            Self.quarterRound(&x, 1, 6, 11, 12)
            Self.quarterRound(&x, 2, 7, 8, 13)
            Self.quarterRound(&x, 3, 4, 9, 14)
        }
        for i in 0..<16 { x[i] &+= state[i] }
        state[12] &+= 1
        return x
    }

    /// `count` 64-bit words of keystream.
    mutating func words64(_ count: Int) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(count)
        while out.count < count {
            let block = nextBlock()
            for i in stride(from: 0, to: 16, by: 2) where out.count < count {
                out.append(UInt64(block[i]) | UInt64(block[i + 1]) << 32)
            }
        }
        return out
    }
}
