import Foundation
import X509
import Yams

/// A federation's membership, as written in `project.yaml` (see `pipelines/project.yaml` for every key).
///
/// Participant names become certificate common names and kit folder names, so they are restricted to
/// `[A-Za-z0-9._@-]`, 1–64 characters, not starting with `.` or `-`, and unique across server, sites and admins.
public struct Project: Sendable, Hashable {
    /// One administrator: a name (the certificate CN), an optional e-mail (an rfc822Name SAN), a role (`admin`, the
    /// project lead, by default; `member`; `site-admin`) and, for a site admin, the site it administers.
    public struct Admin: Sendable, Hashable {
        public var name: String
        public var email: String?
        public var role: ParticipantRole
        public var site: String?
        public init(name: String, email: String? = nil, role: ParticipantRole = .admin, site: String? = nil) {
            self.name = name
            self.email = email
            self.role = role
            self.site = site
        }

        /// How `role:` may be written in `project.yaml`: `lead` and `admin` are the project lead.
        static let roleSpellings: [String: ParticipantRole] = [
            "lead": .admin, "admin": .admin, "member": .member, "site-admin": .siteAdmin,
        ]
    }

    /// The aggregation server: its participant name and the address clients dial.
    public struct Server: Sendable, Hashable {
        public var name: String
        public var address: ServerAddress
        public init(name: String, address: ServerAddress) {
            self.name = name
            self.address = address
        }
    }

    /// The project's name (the certificates' O attribute and the CA's CN prefix).
    public var name: String
    public var server: Server
    /// Site names, in file order.
    public var sites: [String]
    public var admins: [Admin]
    /// Lifetime of participant certificates, in days.
    public var validityDays: Int
    /// Lifetime of the CA certificate, in days; used only when the CA is created.
    public var caValidityDays: Int

    /// Default participant certificate lifetime, in days.
    public static let defaultValidityDays = 365
    /// Default CA certificate lifetime, in days.
    public static let defaultCAValidityDays = 3650
    /// Folder names inside the output that cannot be participant names.
    static let reservedNames: Set<String> = ["ca"]

    /// Creates a project and validates it like a parsed file.
    /// - Throws: `ProvisioningError.invalidProject` naming the offending key.
    public init(
        name: String, server: Server, sites: [String], admins: [Admin] = [],
        validityDays: Int = Project.defaultValidityDays, caValidityDays: Int = Project.defaultCAValidityDays
    ) throws(ProvisioningError) {
        self.name = name
        self.server = server
        self.sites = sites
        self.admins = admins
        self.validityDays = validityDays
        self.caValidityDays = caValidityDays
        try validate()
    }

    /// Every participant: the server first, then sites and admins in file order.
    public var participants: [Participant] {
        [Participant(name: server.name, role: .server)]
            + sites.map { Participant(name: $0, role: .site) }
            + admins.map { Participant(name: $0.name, role: $0.role, email: $0.email, site: $0.site) }
    }

    // MARK: - Loading

    /// Reads and validates a project file.
    /// - Throws: `ProvisioningError.invalidProject` naming the file and key at fault.
    public static func load(path: String) throws(ProvisioningError) -> Project {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ProvisioningError(
                .invalidProject, "cannot read project file \(path): check the path",
                cause: "\(error)")
        }
        return try parse(yaml: text, source: path)
    }

    /// Parses and validates project YAML.
    /// - Parameters:
    ///   - yaml: the file's text.
    ///   - source: the file name used in error messages.
    /// - Throws: `ProvisioningError.invalidProject` naming the key at fault.
    public static func parse(yaml: String, source: String = "project.yaml") throws(ProvisioningError) -> Project {
        func fail(_ key: String, _ problem: String) -> ProvisioningError {
            ProvisioningError(.invalidProject, "\(source): '\(key)' \(problem)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ProvisioningError(.invalidProject, "\(source) is not valid YAML: fix the syntax", cause: "\(error)")
        }
        guard let top = root?.mapping else {
            throw ProvisioningError(.invalidProject, "\(source) must be a mapping with keys 'name', 'server', 'sites'")
        }
        let known: Set<String> = ["name", "server", "sites", "admins", "validity_days", "ca_validity_days"]
        for key in top.keys.compactMap(\.string) where !known.contains(key) {
            throw fail(key, "is not a project key (known: \(known.sorted().joined(separator: ", ")))")
        }

        guard let name = top["name"]?.string, !name.isEmpty else {
            throw fail("name", "is missing: give a project name")
        }

        guard let serverNode = top["server"] else {
            throw fail("server", "is missing: give server.name, server.host and server.port")
        }
        guard let server = serverNode.mapping else { throw fail("server", "must be a mapping with name, host, port") }
        for key in server.keys.compactMap(\.string) where !["name", "host", "port"].contains(key) {
            throw fail("server.\(key)", "is not a server key (known: host, name, port)")
        }
        guard let serverName = server["name"]?.string else { throw fail("server.name", "is missing") }
        guard let host = server["host"]?.string, !host.isEmpty else {
            throw fail("server.host", "is missing: the DNS name or IP address clients dial")
        }
        guard let portNode = server["port"] else { throw fail("server.port", "is missing: a TCP port, 1-65535") }
        guard let port = portNode.int, (1...65535).contains(port) else {
            throw fail("server.port", "must be an integer in 1-65535, not '\(portNode.string ?? "?")'")
        }

        var sites: [String] = []
        if let sitesNode = top["sites"] {
            guard let list = sitesNode.sequence else { throw fail("sites", "must be a list of site names") }
            for (index, item) in list.enumerated() {
                guard let site = item.string, item.scalar != nil else {
                    throw fail("sites[\(index)]", "must be a site name (a string)")
                }
                sites.append(site)
            }
        }

        var admins: [Admin] = []
        if let adminsNode = top["admins"] {
            guard let list = adminsNode.sequence else {
                throw fail("admins", "must be a list of names or {name, email} mappings")
            }
            for (index, item) in list.enumerated() {
                if item.scalar != nil, let adminName = item.string {
                    admins.append(Admin(name: adminName))
                } else if let entry = item.mapping {
                    for key in entry.keys.compactMap(\.string) where !["name", "email", "role", "site"].contains(key) {
                        throw fail("admins[\(index)].\(key)", "is not an admin key (known: email, name, role, site)")
                    }
                    guard let adminName = entry["name"]?.string else {
                        throw fail("admins[\(index)].name", "is missing")
                    }
                    var role = ParticipantRole.admin
                    if let text = entry["role"]?.string {
                        let spellings = Admin.roleSpellings
                        guard let parsed = spellings[text] else {
                            throw fail(
                                "admins[\(index)].role",
                                "'\(text)' is not an admin role (known: "
                                    + "\(spellings.keys.sorted().joined(separator: ", ")))"
                            )
                        }
                        role = parsed
                    }
                    admins.append(
                        Admin(name: adminName, email: entry["email"]?.string, role: role, site: entry["site"]?.string))
                } else {
                    throw fail("admins[\(index)]", "must be a name or a {name, email} mapping")
                }
            }
        }

        func days(_ key: String, default value: Int) throws(ProvisioningError) -> Int {
            guard let node = top[Node(key)] else { return value }
            guard let days = node.int else {
                throw fail(key, "must be a whole number of days, not '\(node.string ?? "?")'")
            }
            return days
        }
        let validity = try days("validity_days", default: defaultValidityDays)
        let caValidity = try days("ca_validity_days", default: defaultCAValidityDays)

        do {
            return try Project(
                name: name, server: Server(name: serverName, address: ServerAddress(host: host, port: port)),
                sites: sites, admins: admins, validityDays: validity, caValidityDays: caValidity)
        } catch {
            throw ProvisioningError(error.code, "\(source): \(error.message)", cause: error.cause)
        }
    }

    // MARK: - Validation

    /// Checks names, uniqueness, the server address and lifetimes.
    func validate() throws(ProvisioningError) {
        func fail(_ key: String, _ problem: String) -> ProvisioningError {
            ProvisioningError(.invalidProject, "'\(key)' \(problem)")
        }
        guard !name.isEmpty, name.count <= 64, !name.contains(where: \.isNewline) else {
            throw fail("name", "must be 1-64 characters on one line")
        }
        var seen: [String: String] = [:]
        func check(_ participant: String, key: String) throws(ProvisioningError) {
            if let problem = Self.nameProblem(participant) { throw fail(key, "'\(participant)' \(problem)") }
            if let first = seen[participant.lowercased()] {
                throw fail(
                    key,
                    "duplicates the name '\(participant)' already used by '\(first)': names must be unique "
                        + "across server, sites and admins (case-insensitively; each becomes a kit folder)")
            }
            seen[participant.lowercased()] = key
        }
        try check(server.name, key: "server.name")
        for (index, site) in sites.enumerated() { try check(site, key: "sites[\(index)]") }
        for (index, admin) in admins.enumerated() {
            try check(admin.name, key: "admins[\(index)].name")
            guard ParticipantRole.administrators.contains(admin.role) else {
                throw fail("admins[\(index)].role", "must be an admin role, not '\(admin.role.rawValue)'")
            }
            if admin.role == .siteAdmin {
                guard let site = admin.site, sites.contains(site) else {
                    throw fail(
                        "admins[\(index)].site",
                        "must name one of the project's sites for a site admin "
                            + "(sites: \(sites.joined(separator: ", ")))"
                    )
                }
            } else if admin.site != nil {
                throw fail("admins[\(index)].site", "is only for role site-admin")
            }
            if let email = admin.email {
                let parts = email.split(separator: "@", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), email.allSatisfy(\.isASCII),
                    !email.contains(where: \.isWhitespace)
                else {
                    throw fail("admins[\(index)].email", "'\(email)' is not an e-mail address")
                }
            }
        }
        let address = server.address
        guard address.isDNSName || address.ipv4Bytes != nil || address.ipv6Bytes != nil else {
            throw fail("server.host", "'\(address.host)' is neither a DNS name nor an IP address")
        }
        guard (1...65535).contains(address.port) else { throw fail("server.port", "must be in 1-65535") }
        guard (1...36500).contains(validityDays) else { throw fail("validity_days", "must be in 1-36500") }
        guard (1...36500).contains(caValidityDays) else { throw fail("ca_validity_days", "must be in 1-36500") }
    }

    /// Why `name` cannot be a participant name, or `nil` if it can.
    static func nameProblem(_ name: String) -> String? {
        if name.isEmpty || name.count > 64 { return "must be 1-64 characters" }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "must not start with '.' or '-'" }
        let allowed = name.unicodeScalars.allSatisfy {
            ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || "._@-".unicodeScalars.contains($0)
        }
        if !allowed { return "may contain only letters, digits, '.', '_', '@' and '-'" }
        if reservedNames.contains(name.lowercased()) { return "is reserved (the CA's folder)" }
        return nil
    }
}

/// One member of the federation: a name (the certificate CN and kit folder) and a role (the certificate OU).
public struct Participant: Sendable, Hashable {
    public var name: String
    public var role: ParticipantRole
    /// An administrator's e-mail, put in the certificate as an rfc822Name subject alternative name.
    public var email: String?
    /// A site admin's site, put in the certificate as the URI subject alternative name `urn:tessera:site:<site>`.
    public var site: String?
    public init(name: String, role: ParticipantRole, email: String? = nil, site: String? = nil) {
        self.name = name
        self.role = role
        self.email = email
        self.site = site
    }

    /// The prefix of the URI subjectAltName that names a site admin's site.
    public static let siteURIPrefix = "urn:tessera:site:"

    /// The site a certificate names in a `urn:tessera:site:<site>` URI subjectAltName (the first), if any.
    public static func site(of certificate: Certificate) -> String? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        for name in names {
            if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix(siteURIPrefix) {
                let site = String(uri.dropFirst(siteURIPrefix.count))
                if !site.isEmpty { return site }
            }
        }
        return nil
    }
}
