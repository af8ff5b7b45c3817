import FederationCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a file so that after a crash or power loss it is either the old file or the complete new one: the bytes go
/// to a temporary file in the same folder, which is flushed (`fsync`), renamed over the target, and then the folder
/// itself is flushed so the rename is on disk too (POSIX: a rename is durable only once its directory is synced).
/// Used for checkpoints and job state, whose loss or truncation would make a restarted server redo or lose work.
package enum DurableFile {
    /// - Throws: `.invalidConfiguration` naming the path when any step fails (the target is unchanged then).
    package static func write(_ data: Data, to path: String) throws(FederationError) {
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = folder + "/." + (path as NSString).lastPathComponent + ".\(getpid()).tmp"
        do {
            try write(data, toNew: temporary)
            guard rename(temporary, path) == 0 else { throw posixError("rename to \(path)") }
            try syncDirectory(folder)
        } catch {
            unlink(temporary)
            throw FederationError(
                .invalidConfiguration,
                "cannot write \(path) durably; check the server's state "
                    + "folder (space, permissions)", cause: "\(error)")
        }
    }

    /// Flushes a folder's entries (renames, new files) to disk.
    package static func syncDirectory(_ folder: String) throws {
        let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw posixError("open \(folder)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw posixError("fsync \(folder)") }
    }

    private static func write(_ data: Data, toNew path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError("create \(path)") }
        defer { close(fd) }
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) throws in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress?.advanced(by: done), bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw posixError("write \(path)")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw posixError("fsync \(path)") }
    }

    private static func posixError(_ what: String) -> NSError {
        NSError(
            domain: NSPOSIXErrorDomain, code: Int(errno),
            userInfo: [
                NSLocalizedDescriptionKey: "\(what): "
                    + String(cString: strerror(errno))
            ])
    }
}
