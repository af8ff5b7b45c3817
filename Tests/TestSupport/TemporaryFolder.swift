import Foundation

/// A fresh, empty folder under the system's temporary directory, named after `name` (the calling function by
/// default) plus a UUID; the caller removes it (`removeTemporary`).
public func temporaryFolder(_ name: String = #function) throws -> String {
    let clean = name.filter { $0.isLetter || $0.isNumber || $0 == "-" }
    let path = NSTemporaryDirectory() + "tessera-tests-\(clean)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Removes a folder made by `temporaryFolder`, ignoring errors.
public func removeTemporary(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
