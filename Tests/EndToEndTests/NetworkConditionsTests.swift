import FederationCore
import Foundation
import Offload
import Testing

/// A federated study over real network conditions (#17 part 7): `scripts/netns_study.sh` runs the server and three
/// sites in separate network namespaces with shaped links (rate, loss, delay: what the kernel can emulate), cuts one
/// site's link while it uploads and brings it back. Checked here from the server's own audit log (`tessera admin
/// logs --json`) and job status: every round closed exactly once, with every site, and every result counted once.
/// Needs root and `ip netns` (CI runs as root); elsewhere the test is cancelled with the script's reason.
@Suite("A study over shaped links in network namespaces", .serialized)
struct NetworkConditionsTests {
    static let sites = ProcessCluster.sites
    static let rounds = 3

    @Test(
        "Server and three sites in their own namespaces, a link cut mid-upload: no lost or double-counted round",
        .timeLimit(.minutes(5)))
    func studyOverShapedLinks() async throws {
        let binary = try ProcessCluster.tesseraBinary()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-netns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer {
            if ProcessInfo.processInfo.environment["TESSERA_KEEP_E2E"] == nil {
                try? FileManager.default.removeItem(at: folder)
            }
        }
        let script = ProcessCluster.repository.appendingPathComponent("scripts/netns_study.sh").path
        var environment = ProcessInfo.processInfo.environment
        environment["TESSERA"] = binary
        environment["OUT"] = folder.path
        environment["ROUNDS"] = String(Self.rounds)
        environment["DATA"] = ProcessCluster.repository.appendingPathComponent("sample-data").path
        let log = folder.appendingPathComponent("script.log")
        let status = try await Self.run(script, environment: environment, log: log, deadline: .seconds(240))
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        print(output)
        try #require(status != nil, "scripts/netns_study.sh did not end within 240 s:\n\(output)")
        if status == 77 {
            let reason = output.split(separator: "\n").first { $0.hasPrefix("SKIP: ") }.map { $0.dropFirst(6) }
            try Test.cancel(Comment(rawValue: "scripts/netns_study.sh: \(reason ?? "skipped")"))
        }
        try #require(status == 0, "scripts/netns_study.sh exited with \(status ?? -1):\n\(output)")

        // The server's audit log of the job, as `tessera admin logs --json` printed it.
        let lines = try String(contentsOf: folder.appendingPathComponent("audit.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        let entries = try lines.map { try JSONDecoder().decode(AuditEntry.self, from: Data($0.utf8)) }
        #expect(entries.filter { $0.kind == .jobState }.map(\.detail) == ["queued", "running", "finished"])
        let events = entries.filter { $0.kind == .jobEvent }.map(\.detail)
        for round in 1...Self.rounds {
            let closed = events.filter { $0.hasPrefix("round \(round) closed (") }
            try #require(closed.count == 1, "round \(round): \(closed)")
            let participants = closed[0].components(separatedBy: " with ").last?
                .components(separatedBy: ", ").sorted()
            #expect(participants == Self.sites, "round \(round): \(closed[0])")
            // A retried round starts afresh (new sums each attempt): only its last attempt's results count.
            let start = events.lastIndex {
                $0.hasPrefix("round \(round) started at")
                    || ($0.hasPrefix("round \(round) attempt ") && $0.contains(" started at "))
            }
            let attempt = events[(try #require(start, "round \(round) never started: \(events)"))...]
            for site in Self.sites {
                let accepted = attempt.filter { $0.hasPrefix("round \(round): result of \(site) accepted") }.count
                // A result counted and then taken out with the round's sums (the words of RefusalReason.resent) is
                // sent again: it counts once.
                let resent = attempt.filter {
                    $0.hasPrefix("round \(round): result of \(site) rejected")
                        && $0.contains("taken out with the round's sums")
                }.count
                #expect(accepted - resent == 1, "round \(round), \(site): \(events)")
            }
        }
        #expect(events.filter { $0.contains(" closed (") }.count == Self.rounds, "\(events)")

        // The round times the script measured, one per round, and the server's view of the job.
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("summary.json")))
                as? [String: Any])
        let rounds = try #require(summary["rounds"] as? [[String: Any]])
        #expect(rounds.compactMap { $0["round"] as? Int } == Array(1...Self.rounds))
        #expect(rounds.allSatisfy { ($0["seconds"] as? Double ?? 0) > 0 }, "\(rounds)")
        #expect(summary["round_records"] as? Int == Self.rounds)
        #expect(summary["checkpoints"] as? Int == Self.rounds)
        #expect((summary["problems"] as? [Any])?.isEmpty == true, "\(summary["problems"] ?? "")")
    }

    /// Runs `bash script` to its end, its output (stdout and stderr) into `log`; its exit status. Past `deadline` the
    /// script is sent SIGTERM (its trap ends its processes and removes its namespaces) and nil is returned.
    static func run(_ script: String, environment: [String: String], log: URL, deadline: Duration) async throws
        -> Int32?
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script]
        process.environment = environment
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                await Blocking.run {
                    process.waitUntilExit()
                    return process.terminationStatus
                }
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil { process.terminate() }
            group.cancelAll()
            await group.waitForAll()
            return first
        }
    }
}
