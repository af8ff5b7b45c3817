import Foundation
import SwiftProtobuf

/// Reads the scalars back from event files written by `EventFileWriter` (tests, tools): every record is checked
/// against its CRCs (`TFRecord.records`) and decoded as an `Event`; records that are not scalar summaries are
/// skipped.
public enum EventFileReader {
    /// One value of a curve.
    public struct Scalar: Sendable, Equatable {
        public var tag: String
        public var step: Int
        /// Seconds since the Unix epoch.
        public var wallTime: Double
        public var value: Float
    }

    /// The scalars of the event file at `path`, in file order.
    /// - Throws: `TrackingError` when the file is unreadable, larger than `maxBytes`, or not a valid event file.
    public static func scalars(contentsOf path: String, maxBytes: Int = 1 << 28) throws(TrackingError) -> [Scalar] {
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? Int.max
        } catch {
            throw TrackingError("cannot read the event file \(path)", cause: error)
        }
        guard size <= maxBytes else { throw TrackingError("\(path) is \(size) bytes, over \(maxBytes)") }
        let bytes: [UInt8]
        do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw TrackingError("cannot read the event file \(path)", cause: error)
        }
        let records: [[UInt8]]
        do { records = try TFRecord.records(in: bytes) } catch { throw TrackingError("\(path): \(error)") }
        var out: [Scalar] = []
        for record in records {
            let event: Tensorboard_Event
            do { event = try Tensorboard_Event(serializedBytes: record) } catch {
                throw TrackingError("\(path) holds a record that is not an Event", cause: error)
            }
            guard case .summary(let summary)? = event.what, let step = Int(exactly: event.step) else { continue }
            for value in summary.value {
                guard case .simpleValue(let v)? = value.value else { continue }
                out.append(Scalar(tag: value.tag, step: step, wallTime: event.wallTime, value: v))
            }
        }
        return out
    }

    /// The scalars of every event file (`*tfevents*`) directly in the run folder `folder`, by tag, in step order.
    public static func run(_ folder: String) throws(TrackingError) -> [String: [Scalar]] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
            throw TrackingError("cannot list the run folder \(folder)", cause: error)
        }
        var out: [String: [Scalar]] = [:]
        for name in names.sorted() where name.contains("tfevents") {
            for scalar in try scalars(contentsOf: folder + "/" + name) { out[scalar.tag, default: []].append(scalar) }
        }
        return out.mapValues { $0.sorted { $0.step < $1.step } }
    }
}
