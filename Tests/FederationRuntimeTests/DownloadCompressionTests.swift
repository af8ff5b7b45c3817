import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// A site that trains by adding a step of its own to the model it received (different per site and round), and
/// records what it received beside the server's global model at that moment.
struct ChangeRecordingTrainer: LocalTrainer {
    struct Seen: Sendable {
        var round: Int
        var received: ParameterSet
        var serverGlobal: ParameterSet
        var change: ModelDownload
        var stale: ModelDownload
        /// What the server answers a site that holds the current model already.
        var same: ModelDownload
        var previous: ModelDigest?
    }

    let site: Int
    let coordinator: Coordinator<ManualClock>
    let log = SeenLog()

    final class SeenLog: Sendable {
        let seen = Mutex<[Seen]>([])
        func withLock<R>(_ body: (inout [Seen]) -> R) -> R { seen.withLock { body(&$0) } }
    }

    init(site: Int, coordinator: Coordinator<ManualClock>) {
        self.site = site
        self.coordinator = coordinator
    }

    static func step(site: Int, round: Int, index: Int) -> Float {
        Float((index * 7 + site * 13 + round * 29) % 41 - 20) * 0.001 * Float(site + 1)
    }

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        let previous = log.withLock { $0.last.map { ModelDigest(of: $0.received) } }
        // What the server answers for the model this site held, and for a model nobody holds.
        let change = try await coordinator.modelDownload(for: task, maxScalars: 40, held: previous)
        let stale = try await coordinator.modelDownload(for: task, maxScalars: 40, held: ModelDigest(value: 1))
        let same = try await coordinator.modelDownload(for: task, maxScalars: 40, held: ModelDigest(of: global))
        let seen = Seen(
            round: task.round, received: global, serverGlobal: await coordinator.global, change: change,
            stale: stale, same: same, previous: previous)
        log.withLock { $0.append(seen) }
        var weights = global
        try weights.updateValues { _, v in
            for i in v.indices { v[i] += Self.step(site: site, round: task.round, index: i) }
        }
        return (weights, 1 + site, [:])
    }
}

@Suite("Download compression: sites download the encoded change from the model they hold")
struct DownloadCompressionTests {
    static let initial = ParameterSet([
        ParameterTensor(name: "w", shape: [10, 23], values: (0..<230).map { Float($0 % 17) * 0.02 - 0.15 }),
        ParameterTensor(name: "b", shape: [5], values: [0.1, -0.2, 0.3, 0, 1]),
    ])

    static func run(download: UpdateEncoding) async throws -> (ParameterSet, [[ChangeRecordingTrainer.Seen]]) {
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "dl", rounds: 4, sites: ["a", "b", "c"], minClients: 3)
        job.downloadEncoding = download
        let coordinator = Coordinator(
            configuration: job, initialModel: Self.initial, strategy: FedAvg(), clock: clock)
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        var trainers: [ChangeRecordingTrainer] = []
        var agents: [Task<[Int], any Error>] = []
        for (i, site) in ["a", "b", "c"].enumerated() {
            let trainer = ChangeRecordingTrainer(site: i, coordinator: coordinator)
            trainers.append(trainer)
            var agent = SiteAgent(
                site: site, connection: connection, trainer: trainer, clock: clock, chunkScalars: 40, log: { _ in })
            agent.heartbeatInterval = nil
            let frozen = agent
            agents.append(Task { try await frozen.run() })
        }
        let model = try await run.value
        for a in agents { #expect(try await a.value == [1, 2, 3, 4]) }
        clock.advance(by: .seconds(100_000))
        return (model, trainers.map { t in t.log.withLock { $0 } })
    }

    static func bits(_ set: ParameterSet) -> [[UInt32]] { set.tensors.map { $0.values.map(\.bitPattern) } }

    @Test(
        "Every site holds the same model; it follows the global one within half an encoding step; G is exact",
        arguments: [UpdateEncoding.int8Blocks(blockSize: 16), .float16])
    func followsGlobal(encoding: UpdateEncoding) async throws {
        let (plain, _) = try await Self.run(download: .float32)
        let (model, seen) = try await Self.run(download: encoding)
        // The global model is updated from the sites' diffs as always: the same as without compression up to float
        // rounding (the sites trained from R instead of G, and their diffs were computed there).
        for (a, b) in zip(model.tensors, plain.tensors) {
            for (x, y) in zip(a.values, b.values) { #expect(abs(x - y) <= 1e-5) }
        }
        for round in 1...4 {
            let models = seen.map { $0[round - 1] }
            #expect(models.allSatisfy { $0.round == round })
            // Every site built the same model, bit for bit.
            #expect(models.allSatisfy { Self.bits($0.received) == Self.bits(models[0].received) })
            let r = models[0].received
            let g = models[0].serverGlobal
            if round == 1 {
                #expect(Self.bits(r) == Self.bits(Self.initial))
                #expect(models.allSatisfy { $0.change.base == nil })
                continue
            }
            // Downloaded as a change from the previous round's model; a stranger's digest gets the whole model.
            for m in models {
                #expect(m.change.base == m.previous && m.change.base != nil)
                #expect(m.change.digest == ModelDigest(of: r))
                #expect(m.change.chunks.allSatisfy { $0.encoded?.encoding == encoding && $0.valueCount <= 40 })
                #expect(m.stale.base == nil && m.stale.digest == ModelDigest(of: r))
                #expect(try Self.bits(ParameterSet(assembling: m.stale.chunks)) == Self.bits(r))
            }
            // R within one encoding's error of G: int8 ≤ s/2 with s = max|G − R_prev| / 127 over the block (bounded
            // here by the whole model's); fp16 ≤ 2⁻¹¹ of the change.
            let previous = seen[0][round - 2].received
            for t in g.tensors {
                let rv = r[t.name]!.values
                let pv = previous[t.name]!.values
                let largest = zip(t.values, pv).map { abs($0 - $1) }.max()!
                let bound = encoding == .float16 ? largest * 0x1p-11 : largest / 254
                for i in t.values.indices {
                    #expect(abs(rv[i] - t.values[i]) <= bound * 1.001 + 1e-7, "round \(round) \(t.name)[\(i)]")
                }
                #expect(rv != t.values || encoding == .float16)  // int8 loses something: R is not G
            }
        }
    }

    @Test("Without download compression every download is the whole global model, with its digest")
    func plainDownloads() async throws {
        let (_, seen) = try await Self.run(download: .float32)
        for site in seen {
            for m in site {
                #expect(m.change.base == nil && m.change.digest == ModelDigest(of: m.serverGlobal))
                // A site asking again while it holds the model gets nothing to add.
                #expect(m.same.chunks.isEmpty && m.same.base == m.change.digest && m.same.digest == m.change.digest)
                #expect(Self.bits(m.received) == Self.bits(m.serverGlobal))
            }
        }
    }
}

/// The in-process connection, but the first download of round 2 fails as a network hiccup would, before anything
/// is sent (the held model untouched); records whether each download came as a change.
private struct HiccupConnection: FederationConnection {
    final class State: Sendable {
        let failed = Mutex(false)
        let changes = Mutex<[(round: Int, change: Bool)]>([])
    }

    let inner: InProcessConnection
    let state = State()

    func register(site: String) async throws(FederationError) -> String? { try await inner.register(site: site) }
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await inner.nextTask(site: site)
    }
    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        try await inner.downloadModel(for: task, maxScalars: maxScalars)
    }
    func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        if task.round == 2,
            state.failed.withLock({ f in
                defer { f = true }
                return !f
            })
        {
            throw FederationError(.transient, "connection reset before the answer")
        }
        let got = try await inner.downloadModel(for: task, maxScalars: maxScalars, holding: &held)
        state.changes.withLock { $0.append((task.round, got.changed != nil)) }
        return got
    }
    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        try await inner.uploadResult(header, chunks: chunks)
    }
    func heartbeat(site: String) async throws(FederationError) { try await inner.heartbeat(site: site) }
}

extension DownloadCompressionTests {
    @Test("A download that fails before it changed anything keeps the held model: the retry still gets the change")
    func retryKeepsHeldModel() async throws {
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "dr", rounds: 3, sites: ["a"], minClients: 1)
        job.downloadEncoding = .int8Blocks(blockSize: 16)
        let coordinator = Coordinator(configuration: job, initialModel: Self.initial, strategy: FedAvg(), clock: clock)
        let connection = HiccupConnection(inner: InProcessConnection(coordinator: coordinator))
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: ChangeRecordingTrainer(site: 0, coordinator: coordinator),
            clock: clock, retry: RetryPolicy(base: .zero, cap: .zero), chunkScalars: 40, log: { _ in })
        agent.heartbeatInterval = nil
        let frozen = agent
        async let final = coordinator.run()
        let rounds = try await frozen.run()
        _ = try await final
        #expect(rounds == [1, 2, 3])
        #expect(connection.state.failed.withLock { $0 })
        let changes = connection.state.changes.withLock { $0 }
        #expect(changes.map(\.round) == [1, 2, 3])
        #expect(changes.map(\.change) == [false, true, true])  // round 2's retry offered the model it still held
        clock.advance(by: .seconds(100_000))
    }
}

extension DownloadCompressionTests {
    @Test("A job whose download encoding has an impossible int8 block size is refused when it is validated")
    func impossibleBlockSize() {
        for b in [0, -1, 15, 65_537] {
            var job = JobConfiguration(jobID: "db", rounds: 1, sites: ["a"], minClients: 1)
            job.downloadEncoding = .int8Blocks(blockSize: b)
            #expect(throws: FederationError.self) { try job.validate() }
        }
    }
}
