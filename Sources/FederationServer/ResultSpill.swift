import FederationCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The chunks of one in-flight result, written to a temporary file as they are added into the accumulator, so that
/// a stream that breaks half-way can be taken back out exactly (read back chunk by chunk and subtracted) while the
/// server keeps none of them in memory.
///
/// The file is anonymous (unlinked as soon as it is opened: nothing is left behind, even by a killed server) and
/// reused: `reset()` voids its contents when the result is committed or abandoned, and the next result of the same
/// site overwrites it from the start. Overwriting pages the page cache already holds runs at memory speed; creating
/// a fresh file for every result costs the kernel a page allocation per 4 KiB (measured here: 0.25–3 GB/s for new
/// pages against 11.7 GB/s for overwritten ones, i.e. up to seconds per round at 25M parameters × 16 sites).
///
/// File layout: records of `[tensor index: UInt32][offset: UInt64][count: UInt64][count float32 values]`, native
/// byte order (the file never leaves the process that wrote it).
final class ResultSpill {
    /// Where the file was created (it is unlinked at once; for messages only).
    let path: String
    private var descriptor: Int32
    /// Bytes of the current result's records.
    private(set) var byteCount = 0

    private static let headerSize = 4 + 8 + 8

    /// Creates the file, readable by the owner only, and unlinks it (it lives as long as this object).
    /// - Throws: `.transient` naming the path and the system error.
    init(path: String) throws(FederationError) {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Self.error("create", path) }
        unlink(path)
    }

    deinit { close() }

    /// Voids the contents: the next `append` writes from the start, over pages the kernel already holds.
    func reset() { byteCount = 0 }

    /// Appends one chunk (its tensor's position in the model, offset and values).
    /// - Throws: `.transient` when the write fails (disk full, I/O error); the file is then unusable.
    func append(tensor: Int, offset: Int, values: ArraySlice<Float>) throws(FederationError) {
        let wroteHeader = withUnsafeTemporaryAllocation(byteCount: Self.headerSize, alignment: 8) { out in
            out.storeBytes(of: UInt32(truncatingIfNeeded: tensor), toByteOffset: 0, as: UInt32.self)
            out.storeBytes(of: UInt64(offset), toByteOffset: 4, as: UInt64.self)
            out.storeBytes(of: UInt64(values.count), toByteOffset: 12, as: UInt64.self)
            return writeAll(UnsafeRawBufferPointer(out), at: byteCount)
        }
        guard wroteHeader, values.withUnsafeBytes({ writeAll($0, at: byteCount + Self.headerSize) }) else {
            throw Self.error("write to", path)
        }
        byteCount += Self.headerSize + values.count * MemoryLayout<Float>.size
    }

    /// Reads the chunks back in the order they were written, one at a time (memory: the largest chunk).
    /// - Throws: `.transient` when the file cannot be read back completely.
    func replay(_ body: (_ tensor: Int, _ offset: Int, _ values: ArraySlice<Float>) -> Void) throws(FederationError) {
        var position = 0
        var buffer: [Float] = []
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        while position < byteCount {
            guard header.withUnsafeMutableBytes({ readAll(into: $0, at: position) }) else {
                throw Self.error("read", path)
            }
            position += Self.headerSize
            let (tensor, offset, count) = header.withUnsafeBytes { raw in
                (
                    Int(raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
                    Int(raw.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
                    Int(raw.loadUnaligned(fromByteOffset: 12, as: UInt64.self))
                )
            }
            guard count >= 0, position + count * 4 <= byteCount else { throw Self.error("read (corrupt record)", path) }
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
            guard
                buffer.withUnsafeMutableBytes({
                    readAll(
                        into: UnsafeMutableRawBufferPointer(rebasing: $0[..<(count * 4)]),
                        at: position)
                })
            else {
                throw Self.error("read", path)
            }
            position += count * 4
            body(tensor, offset, buffer[..<count])
        }
    }

    /// Closes the file, which frees its disk space; safe to call more than once.
    func close() {
        guard descriptor >= 0 else { return }
        closeDescriptor(descriptor)
        descriptor = -1
        byteCount = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, at position: Int) -> Bool {
        guard descriptor >= 0 else { return false }
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(position + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private func readAll(into bytes: UnsafeMutableRawBufferPointer, at position: Int) -> Bool {
        guard descriptor >= 0 else { return false }
        var done = 0
        while done < bytes.count {
            let n = pread(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(position + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private static func error(_ what: String, _ path: String) -> FederationError {
        let reason = String(cString: strerror(errno))
        return FederationError(
            .transient,
            "the server could not \(what) its spill file \(path) for an in-flight result "
                + "(\(reason)): free disk space or fix the permissions of the server's work directory",
            cause: reason)
    }
}

/// `close(2)`, out of reach of `ResultSpill.close()`'s name.
private func closeDescriptor(_ descriptor: Int32) { _ = close(descriptor) }
