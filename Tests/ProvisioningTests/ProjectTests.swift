import Foundation
import Testing

@testable import Provisioning

@Suite("Project file")
struct ProjectTests {
    static let good = """
        name: demo
        server: {name: server, host: localhost, port: 8443}
        sites: [community-hospital, research-center, treatment-center]
        admins:
          - lead
          - {name: ops, email: ops@example.org}
        validity_days: 30
        """

    @Test("the shipped pipelines/project.yaml parses into the three sample sites")
    func shippedExampleParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("pipelines/project.yaml").path
        let project = try Project.load(path: path)
        #expect(project.sites == ["community-hospital", "research-center", "treatment-center"])
        #expect(project.server.address == ServerAddress(host: "localhost", port: 8443))
        #expect(project.participants.count == 5)
    }

    @Test("a good file parses")
    func goodFileParses() throws {
        let project = try Project.parse(yaml: Self.good)
        #expect(project.name == "demo")
        #expect(project.admins == [.init(name: "lead"), .init(name: "ops", email: "ops@example.org")])
        #expect(project.validityDays == 30)
        #expect(project.caValidityDays == Project.defaultCAValidityDays)
        #expect(project.participants.map(\.role) == [.server, .site, .site, .site, .admin, .admin])
    }

    @Test(
        "bad files give an error naming the key",
        arguments: [
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsites: [a, b, a]", "sites[2]", "duplicates"),
            ("name: p\nserver: {name: a, host: localhost, port: 1}\nsites: [A]", "sites[0]", "duplicates"),
            (
                "name: p\nserver: {name: s, host: localhost, port: 1}\nsites: [a]\nadmins: [s]", "admins[0].name",
                "duplicates"
            ),
            ("name: p\nsites: [a]", "server", "is missing"),
            ("name: p\nserver: {name: s, port: 1}\nsites: [a]", "server.host", "is missing"),
            ("name: p\nserver: {name: s, host: localhost}\nsites: [a]", "server.port", "is missing"),
            ("name: p\nserver: {name: s, host: localhost, port: 0}", "server.port", "1-65535"),
            ("name: p\nserver: {name: s, host: localhost, port: 70000}", "server.port", "1-65535"),
            ("name: p\nserver: {name: s, host: localhost, port: http}", "server.port", "1-65535"),
            ("name: p\nserver: {name: s, host: 'bad host', port: 1}", "server.host", "neither"),
            ("server: {name: s, host: localhost, port: 1}", "name", "is missing"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsites: [ca]", "sites[0]", "reserved"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsites: ['a/b']", "sites[0]", "may contain only"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsites: ['../etc']", "sites[0]", "must not start"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsites: a", "sites", "must be a list"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nsite: [a]", "site", "not a project key"),
            ("name: p\nserver: {name: s, host: localhost, port: 1}\nvalidity_days: 0", "validity_days", "1-36500"),
            (
                "name: p\nserver: {name: s, host: localhost, port: 1}\nadmins: [{name: x, email: nope}]",
                "admins[0].email",
                "not an e-mail"
            ),
        ])
    func badFileNamesTheKey(yaml: String, key: String, problem: String) throws {
        let error = #expect(throws: ProvisioningError.self) { try Project.parse(yaml: yaml, source: "bad.yaml") }
        #expect(error?.code == .invalidProject)
        #expect(error?.message.contains("'\(key)'") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(problem) == true, "\(error?.message ?? "")")
        #expect(error?.message.hasPrefix("bad.yaml") == true)
    }

    @Test("YAML syntax errors and missing files are reported with the file")
    func unreadableFiles() throws {
        let syntax = #expect(throws: ProvisioningError.self) { try Project.parse(yaml: "name: [", source: "x.yaml") }
        #expect(syntax?.message.contains("x.yaml is not valid YAML") == true)
        let missing = #expect(throws: ProvisioningError.self) { try Project.load(path: "/nonexistent/project.yaml") }
        #expect(missing?.message.contains("/nonexistent/project.yaml") == true)
    }

    @Test("server addresses print and parse as host:port, IPv6 in brackets")
    func serverAddressText() {
        #expect(ServerAddress(parsing: "localhost:8443") == ServerAddress(host: "localhost", port: 8443))
        #expect(ServerAddress(parsing: "[::1]:443") == ServerAddress(host: "::1", port: 443))
        #expect("\(ServerAddress(host: "::1", port: 443))" == "[::1]:443")
        #expect(ServerAddress(parsing: "localhost") == nil)
        #expect(ServerAddress(parsing: "localhost:99999") == nil)
        #expect(ServerAddress(host: "::1", port: 1).ipv6Bytes == Array(repeating: 0, count: 15) + [1])
        #expect(ServerAddress(host: "fe80::1:2", port: 1).ipv6Bytes?.count == 16)
        #expect(ServerAddress(host: "1.2.3", port: 1).ipv4Bytes == nil)
    }
}
