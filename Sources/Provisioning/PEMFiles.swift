import Crypto
import Foundation
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing the PEM and text files of kits, with the permissions they need.
enum PEMFiles {
    /// Parses one PEM certificate.
    /// - Throws: `ProvisioningError.invalidKit` naming `path`.
    static func certificate(pem: String, path: String) throws(ProvisioningError) -> Certificate {
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw ProvisioningError(
                .invalidKit,
                "\(path) is not a PEM certificate: re-copy the kit from the "
                    + "provisioning output", cause: "\(error)")
        }
    }

    /// Parses a P-256 private key (PKCS#8 or SEC1 PEM).
    /// - Throws: `ProvisioningError.invalidKit` naming `path`.
    static func privateKey(pem: String, path: String) throws(ProvisioningError) -> P256.Signing.PrivateKey {
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw ProvisioningError(
                .invalidKit,
                "\(path) is not a P-256 private key in PEM: re-copy the kit from the "
                    + "provisioning output", cause: "\(error)")
        }
    }

    /// The PEM text of a certificate.
    static func pem(_ certificate: Certificate) throws(ProvisioningError) -> String {
        do {
            return try certificate.serializeAsPEM().pemString + "\n"
        } catch {
            throw ProvisioningError(.crypto, "could not encode a certificate as PEM", cause: "\(error)")
        }
    }

    /// The PKCS#8 PEM text (`BEGIN PRIVATE KEY`) of a key.
    static func pem(_ key: P256.Signing.PrivateKey) -> String {
        key.pemRepresentation + "\n"
    }

    /// Reads a UTF-8 text file.
    /// - Throws: `ProvisioningError.invalidKit` naming the file and saying how to fix it.
    static func read(_ path: String, what: String) throws(ProvisioningError) -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ProvisioningError(
                .invalidKit,
                "\(path) (\(what)) is missing: re-copy the whole kit folder from the "
                    + "provisioning output, or ask the project admin to re-provision")
        }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ProvisioningError(
                .invalidKit, "cannot read \(path) (\(what)): check its permissions",
                cause: "\(error)")
        }
    }

    /// Creates a new file with exactly `mode` and writes `text`; fails if the file exists.
    ///
    /// The file is created by `open(O_CREAT | O_EXCL)` with the mode, so a key is never readable by others, even for
    /// an instant; `fchmod` then removes the umask's influence.
    /// - Throws: `ProvisioningError.io` naming `path`.
    static func create(_ path: String, text: String, mode: mode_t) throws(ProvisioningError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw ProvisioningError(
                .io, "cannot create \(path): check the output folder's permissions",
                cause: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else {
            throw ProvisioningError(.io, "cannot set the mode of \(path)", cause: String(cString: strerror(errno)))
        }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return write(fd, base + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw ProvisioningError(.io, "cannot write \(path)", cause: String(cString: strerror(errno)))
            }
            written += result
        }
        guard fsync(fd) == 0 else {
            throw ProvisioningError(.io, "cannot flush \(path)", cause: String(cString: strerror(errno)))
        }
    }

    /// Creates a folder (and its parents) with `mode`.
    /// - Throws: `ProvisioningError.io` naming `path`.
    static func createDirectory(_ path: String, mode: Int) throws(ProvisioningError) {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        } catch {
            throw ProvisioningError(.io, "cannot create folder \(path): check permissions", cause: "\(error)")
        }
    }

    /// The permission bits of a file, or `nil` if it cannot be inspected.
    static func mode(of path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o7777)
    }
}
