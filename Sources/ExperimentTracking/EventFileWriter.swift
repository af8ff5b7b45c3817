import Foundation
import SwiftProtobuf
import Synchronization

/// Writes one TensorBoard event file (`events.out.tfevents.<seconds>.<host>.<pid>.<n>`) into a run folder: a
/// `file_version` record ("brain.Event:2"), then one `Event` with a `Summary` of scalar values per `write` call,
/// each TFRecord-framed (`TFRecord`) and written at once (unbuffered), so TensorBoard shows a running job live. The
/// folder is a run: point `tensorboard --logdir` at its parent to compare runs.
///
/// Tags are TensorBoard names ("train/loss"); values are stored as float32 (`simple_value`). Non-finite values are
/// written as they are (TensorBoard draws NaN as a gap).
public final class EventFileWriter: Sendable {
    /// The file written.
    public let path: String
    private let handle: Mutex<FileHandle?>
    private static let counter = Atomic<Int>(0)

    /// Creates the run folder (when missing) and a new event file in it.
    /// - Parameters:
    ///   - folder: the run folder.
    ///   - fileName: the file's name (default: TensorFlow's pattern, unique to this process); it must contain
    ///     `tfevents` for TensorBoard to read it.
    ///   - wallTime: the time of the first record.
    /// - Throws: `TrackingError` when the folder or the file cannot be created.
    public init(folder: String, fileName: String? = nil, wallTime: Date = Date()) throws(TrackingError) {
        let name = fileName ?? Self.defaultName(wallTime)
        path = folder + "/" + name
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrackingError("cannot create the event file \(path)")
            }
            handle = Mutex(try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
        } catch let error as TrackingError {
            throw error
        } catch {
            throw TrackingError("cannot create the event file \(path); check the folder's permissions", cause: error)
        }
        var version = Tensorboard_Event()
        version.wallTime = wallTime.timeIntervalSince1970
        version.fileVersion = "brain.Event:2"
        try append(version)
    }

    /// Appends one event: `values` (tag → value) at `step`.
    /// - Throws: `TrackingError` when the file cannot be written (closed, disk full).
    public func write(_ values: [(tag: String, value: Double)], step: Int, wallTime: Date = Date())
        throws(TrackingError)
    {
        guard !values.isEmpty else { return }
        var summary = Tensorboard_Summary()
        summary.value = values.map { item in
            var value = Tensorboard_Summary.Value()
            value.tag = item.tag
            value.simpleValue = Float(item.value)
            return value
        }
        var event = Tensorboard_Event()
        event.wallTime = wallTime.timeIntervalSince1970
        event.step = Int64(step)
        event.summary = summary
        try append(event)
    }

    /// Closes the file; later writes throw.
    public func close() {
        handle.withLock { h in
            try? h?.close()
            h = nil
        }
    }

    private func append(_ event: Tensorboard_Event) throws(TrackingError) {
        let data: [UInt8]
        do { data = try event.serializedBytes() } catch {
            throw TrackingError("cannot encode an event for \(path)", cause: error)
        }
        let record = Data(TFRecord.frame(data))
        let path = self.path
        try handle.withLock { (h: inout FileHandle?) throws(TrackingError) in
            guard let h else { throw TrackingError("the event file \(path) is closed") }
            do { try h.write(contentsOf: record) } catch {
                throw TrackingError("cannot write to the event file \(path)", cause: error)
            }
        }
    }

    static func defaultName(_ time: Date) -> String {
        let seconds = Int(exactly: time.timeIntervalSince1970.rounded(.down)) ?? 0
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        let n = counter.add(1, ordering: .relaxed).newValue
        return "events.out.tfevents.\(seconds).\(host.isEmpty ? "localhost" : host)."
            + "\(ProcessInfo.processInfo.processIdentifier).\(n)"
    }
}

/// The one error type of `ExperimentTracking`: what failed and how to fix it, and the cause.
public struct TrackingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var cause: String?

    public init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause.map { "\($0)" }
    }

    public var description: String { message + (cause.map { " (cause: \($0))" } ?? "") }
}

extension EventFileWriter {
    /// `name` as one run-folder or tag component: ASCII letters, digits, `-`, `_`, `.` kept, anything else `_`, at
    /// most 64 characters; never empty, `.` or `..`.
    public static func component(_ name: String) -> String {
        let kept = name.unicodeScalars.prefix(64).map { s -> Character in
            (s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s))) || "-_.".unicodeScalars.contains(s)
                ? Character(s) : "_"
        }
        let text = String(kept)
        return text.isEmpty || text.allSatisfy { $0 == "." } ? "_" : text
    }
}
