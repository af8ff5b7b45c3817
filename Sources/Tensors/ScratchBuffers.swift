import Synchronization

/// Aligned scratch buffers (the kernels' padded copies, im2col tiles) kept between calls: a training step asks for
/// the same sizes again and again, and a fresh multi-megabyte allocation is mapped and page-faulted (zeroed by the
/// kernel) every time. At most `retained` buffers are kept, the largest first; a buffer is never shared while lent.
enum ScratchBuffers {
    private struct Buffer: @unchecked Sendable {
        var pointer: UnsafeMutableRawPointer
        var bytes: Int
    }

    private static let pool = Mutex<[Buffer]>([])
    static let retained = 12

    /// Calls `body` with `count` floats on a 64-byte boundary (contents unspecified), returned to the pool after.
    static func with<R>(floats count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let bytes = max(64, count * MemoryLayout<Float>.stride)
        let reused = pool.withLock { buffers -> Buffer? in
            // The smallest buffer that fits.
            var best: (index: Int, bytes: Int)?
            for (i, b) in buffers.enumerated() where b.bytes >= bytes && b.bytes < (best?.bytes ?? Int.max) {
                best = (i, b.bytes)
            }
            return best.map { buffers.remove(at: $0.index) }
        }
        let buffer =
            reused
            ?? Buffer(
                pointer: UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64),
                bytes: bytes)
        defer {
            let evicted = pool.withLock { buffers -> Buffer? in
                buffers.append(buffer)
                // Drop the smallest: the large ones are the expensive ones to fault in again.
                guard buffers.count > retained,
                    let smallest = buffers.indices.min(by: { buffers[$0].bytes < buffers[$1].bytes })
                else { return nil }
                return buffers.remove(at: smallest)
            }
            evicted?.pointer.deallocate()
        }
        return body(buffer.pointer.bindMemory(to: Float.self, capacity: count))
    }
}
