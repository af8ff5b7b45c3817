import Foundation

/// What a provisioning run did: the CA, and per participant whether its kit was created, kept or left in place.
public struct ProvisioningReport: Sendable, CustomStringConvertible {
    /// What happened to one kit.
    public enum Action: String, Sendable {
        /// Issued in this run.
        case created
        /// Existed already and was not touched (not re-issued, byte-identical).
        case kept
        /// Exists in the output but its participant is no longer in the project file; not deleted.
        case leftInPlace = "left in place"
        /// Re-issued by `--renew` (new key and certificate; the old kit moved to `.retired/`).
        case renewed
    }

    /// One participant's kit.
    public struct Entry: Sendable {
        public var name: String
        public var role: ParticipantRole
        public var folder: String
        public var action: Action
        public var notValidAfter: Date?
        /// Something the admin should know (a stale server address, an expired certificate, a removed participant).
        public var note: String?
    }

    /// The output folder.
    public var output: String
    /// The CA folder (`<output>/ca`).
    public var caFolder: String
    /// Whether this run created the CA.
    public var caCreated: Bool
    /// The CA certificate's expiry.
    public var caNotValidAfter: Date?
    /// The kits, in project-file order, then removed participants by name.
    public var entries: [Entry] = []

    /// The entries with `action`.
    public func entries(_ action: Action) -> [Entry] { entries.filter { $0.action == action } }

    /// A table for the terminal: one line for the CA and one per kit.
    public var description: String {
        func day(_ date: Date?) -> String {
            date.map { String(ISO8601DateFormatter().string(from: $0).prefix(10)) } ?? "-"
        }
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text.padding(toLength: width, withPad: " ", startingAt: 0)
        }
        func row(_ what: String, _ role: String, _ action: String, _ folder: String, _ until: String) -> String {
            [pad(what, 20), pad(role, 7), pad(action, 14), pad(until, 11), folder].joined(separator: " ")
        }
        var lines = [row("participant", "role", "action", "folder", "valid until")]
        lines.append(row("(project CA)", "ca", caCreated ? "created" : "kept", caFolder, day(caNotValidAfter)))
        for entry in entries {
            let until = day(entry.notValidAfter)
            lines.append(row(entry.name, entry.role.rawValue, entry.action.rawValue, entry.folder, until))
            if let note = entry.note { lines.append("    note: \(note)") }
        }
        let created = entries(.created).count
        let kept = entries(.kept).count
        let left = entries(.leftInPlace).count
        lines.append(
            "\(created) kit(s) created, \(kept) kept unchanged, "
                + "\(left) left in place (not in the project file)")
        if caCreated {
            lines.append("keep \(caFolder)/ca-key.pem secret and backed up: without it no site can be added later")
        }
        return lines.joined(separator: "\n")
    }
}
