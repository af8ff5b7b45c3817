import ExperimentTracking
import FederationCore
import FederationMonitoring
import Foundation
import Synchronization
import Testing

/// The server's TensorBoard runs from a known event sequence: the global curve is the sample-weighted mean of the
/// participants' metrics, timings and bytes are per round, each site's reported metrics go to its own run.
@Suite("Server TensorBoard runs")
struct ServerTrackingTests {
    @Test("Two rounds (one with a refusal and a resent result) give the hand-computed global means and timings")
    func knownRounds() throws {
        let folder = NSTemporaryDirectory() + "tessera-tracking-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tracking = ServerTracking(folder: folder)
        let bytes = Mutex((in: 1000, out: 5000))
        tracking.countBytes { bytes.withLock { $0 } }
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        func at(_ seconds: Double, _ event: JobEvent, bytesNow: (Int, Int)? = nil) {
            if let bytesNow { bytes.withLock { $0 = (bytesNow.0, bytesNow.1) } }
            tracking.observe(event, job: "job-0007", at: t0.addingTimeInterval(seconds))
        }
        at(0, .roundStarted(round: 1, attempt: 0, sites: ["a", "b", "c"]))
        at(5, .resultAccepted(round: 1, site: "a", sampleCount: 10, metrics: ["dice": 0.5, "loss": 1]))
        // b's first result is taken back and sent again: its last one counts.
        at(6, .resultAccepted(round: 1, site: "b", sampleCount: 30, metrics: ["dice": 0.1]))
        at(7, .resultRejected(round: 1, site: "b", reason: "counted, then taken out with the round's sums"))
        at(8, .resultAccepted(round: 1, site: "b", sampleCount: 30, metrics: ["dice": 0.9]))
        at(9, .siteDeclined(round: 1, site: "c", reason: "budget"))
        at(12.5, .roundClosed(round: 1, participants: ["a", "b"], reason: "grace"), bytesNow: (4000, 9000))
        at(13, .roundStarted(round: 2, attempt: 0, sites: ["a", "b", "c"]))
        at(20, .resultAccepted(round: 2, site: "a", sampleCount: 10, metrics: ["dice": 0.6]))
        at(21, .resultAccepted(round: 2, site: "c", sampleCount: 0, metrics: ["dice": 0.2]))
        at(23, .roundClosed(round: 2, participants: ["a", "c"], reason: "all"), bytesNow: (4500, 9100))
        at(30, .crossSiteEvaluated(model: "global", site: "a", metrics: ["dice": 0.7]))
        at(31, .jobFinished)

        let global = try EventFileReader.run(folder + "/job-0007")
        // Round 1: (10·0.5 + 30·0.9) / 40 = 0.8; loss only from a. Round 2: c's zero samples weigh nothing.
        #expect(global["metrics/dice"]?.map(\.value) == [Float(0.8), Float(0.6)])
        #expect(global["metrics/loss"]?.map(\.value) == [1])
        #expect(global["round/duration_seconds"]?.map(\.value) == [12.5, 10])
        #expect(global["round/participants"]?.map(\.value) == [2, 2])
        #expect(global["round/refused"]?.map(\.value) == [2, 0])
        #expect(global["transport/bytes_in"]?.map(\.value) == [3000, 500])
        #expect(global["transport/bytes_out"]?.map(\.value) == [4000, 100])
        #expect(global["metrics/dice"]?.map(\.step) == [1, 2])
        #expect(global["metrics/dice"]?.map(\.wallTime) == [1_800_000_012.5, 1_800_000_023])

        let b = try EventFileReader.run(folder + "/job-0007/sites/b")
        #expect(b["metrics/dice"]?.map(\.value) == [Float(0.1), Float(0.9)])
        let a = try EventFileReader.run(folder + "/job-0007/sites/a")
        #expect(a["cross_site/global/dice"]?.map(\.step) == [2])
        #expect(a["cross_site/global/dice"]?.map(\.value) == [Float(0.7)])
    }

    @Test("Run folders are one safe component: separators and dots cannot leave the log directory")
    func safeNames() {
        #expect(EventFileWriter.component("../etc/passwd") == ".._etc_passwd")
        #expect(EventFileWriter.component("..") == "_")
        #expect(EventFileWriter.component("") == "_")
        #expect(EventFileWriter.component("site-ä 1") == "site-__1")
        #expect(EventFileWriter.component(String(repeating: "x", count: 100)).count == 64)
    }
}
