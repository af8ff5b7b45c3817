import ArgumentParser
import DifferentialPrivacy
import Dispatch
import FederatedAnalytics
import FederationClient
import FederationCore
import FederationGRPC
import FederationJobs
import FederationMonitoring
import FederationServer
import FederationSimulation
import Foundation
import Provisioning
import Tensors
import Training

/// Options of every command that uses a startup kit.
struct KitOptions: ParsableArguments {
    @Option(help: "Startup kit folder (from `tessera provision`).")
    var kit: String

    @Option(
        help: "Server address host:port, overriding the kit's (the certificate is still checked for the kit's host).")
    var server: String?

    @Option(help: "Warn at start when the kit's certificate expires within this many days (0-36500).")
    var expiryWarningDays: Int = Kit.defaultExpiryWarningDays

    func validate() throws {
        guard (0...36500).contains(expiryWarningDays) else {
            throw ValidationError("--expiry-warning-days must be between 0 and 36500, is \(expiryWarningDays)")
        }
    }

    func load(roles: Set<ParticipantRole>) throws -> (kit: Kit, tls: MutualTLSFiles, address: ServerAddress) {
        let kit: Kit
        do { kit = try Kit.load(from: self.kit, expectedRoles: roles) } catch {
            throw CommandFailure(description: "\(error)")
        }
        if let warning = kit.expiryWarning(withinDays: expiryWarningDays) { log("warning: \(warning)") }
        var address = kit.serverAddress
        if let server {
            guard let parsed = ServerAddress(parsing: server) else {
                throw CommandFailure(description: "--server '\(server)' is not host:port")
            }
            address = parsed
        }
        return (
            kit,
            MutualTLSFiles(
                certificateChain: kit.certificatePath, privateKey: kit.privateKeyPath,
                trustRoots: kit.caCertificatePath, revocationList: kit.revocationListPath), address
        )
    }
}

/// Writes a line to standard output at once (unbuffered: scripts and `tessera simulate` read it live).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Calls `handler` once on SIGINT or SIGTERM (the default action is replaced).
func onTermination(_ handler: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { handler(sig) }
        source.resume()
        return source
    }
}

struct Server: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the federation server: jobs submitted by admins, sites over gRPC with mutual TLS.",
        discussion: """
            Listens on the kit's port (or --port; 0 picks a free one and prints it). Jobs, rounds and every round's \
            global model are kept in --state (SQLite + safetensors): restarted with the same folder, the server \
            resumes the running job at its next round. Stop with Ctrl-C or SIGTERM.
            """)

    @OptionGroup var kit: KitOptions

    @Option(help: "State folder (jobs, checkpoints, job files). Default: <kit>/state.")
    var state: String?

    @Option(help: "Address to listen on.")
    var host = "0.0.0.0"

    @Option(help: "TCP port to listen on (default: the kit's; 0: any free port).")
    var port: Int?

    @Option(help: "Seconds the server waits for open calls after SIGTERM or Ctrl-C before it exits anyway (1-600).")
    var shutdownTimeout: Double = 10

    @Option(
        help: """
            Limits every pipeline and query is checked against (sections pipeline: and query:; default: limits.yaml \
            in the kit, else built-in defaults; see docs/limits-pipeline.md).
            """)
    var limits: String?

    @OptionGroup var monitoring: MonitoringOptions

    @OptionGroup var tracking: TrackingOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard shutdownTimeout >= 1, shutdownTimeout <= 600 else {
            throw ValidationError("--shutdown-timeout must be between 1 and 600 seconds, is \(shutdownTimeout)")
        }
    }

    func run() throws {
        common.apply()
        let (pipelineLimits, queryLimits) = try LimitsFile.load(limits, kitFolder: self.kit.kit)
        let (kit, tls, address) = try self.kit.load(roles: [.server])
        let folder = state ?? (self.kit.kit + "/state")
        let host = self.host
        let port = self.port ?? address.port
        let metricsAddress = try monitoring.address()
        let tensorboard = tracking.tensorboard
        try runBlocking {
            let store = try SQLiteCheckpointStore(folder: folder)
            let factory = StudyJobFactory(limits: pipelineLimits, queryLimits: queryLimits)
            let metrics = metricsAddress.map { _ in ServerMetrics() }
            let tracking = tensorboard.map { ServerTracking(folder: $0) { log("[server] \($0)") } }
            let observers: [any JobObserver] = [metrics as (any JobObserver)?, tracking].compactMap { $0 }
            let manager = JobManager(store: store, factory: factory, observers: observers) {
                log("[server] \($0)")
            }
            let server = GRPCFederationServer(
                service: manager, admin: manager, host: host, port: port, tls: tls,
                log: { log("[server] \($0)") })
            tracking?.countBytes {
                let s = server.connectionStatistics
                return (s.bytesIn, s.bytesOut)
            }
            let endpoint = try await metricsAddress.asyncMap { address in
                try await MonitoringOptions.serve(at: address, who: "[server]") {
                    guard let metrics else { return "" }
                    let jobs = (try? await manager.status(jobID: nil)) ?? []
                    metrics.refresh(jobs: jobs, connections: server.connectionStatistics, now: Date())
                    return metrics.render()
                }
            }
            let limit = shutdownTimeout
            let signals = onTermination { sig in
                log("[server] signal \(sig): shutting down (running jobs resume at the next start)")
                Task { await manager.stop() }
                server.beginGracefulShutdown()
                // Calls still open after the bound (a peer that never reads) do not keep the server up: the state
                // on disk is consistent at every moment (checkpoints are written before they count).
                DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
                    log("[server] calls still open \(limit) s after signal \(sig): exiting now")
                    fflush(nil)  // every output stream
                    _exit(0)
                }
            }
            // The sources must live as long as the server (an optimised build would release them at once).
            defer { withExtendedLifetime(signals) {} }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.serve() }
                group.addTask { await manager.run() }
                let bound = try await server.listeningPort()
                // One line on standard output, for scripts (`tessera simulate` reads it).
                say("tessera server: project \(kit.project), listening on \(host):\(bound), state \(folder)")
                try await group.next()
                server.beginGracefulShutdown()
                await manager.stop()
                try await group.waitForAll()
            }
            await endpoint?.stop()
        }
    }
}

struct Client: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a site: take part in the server's jobs with this site's DICOM data.",
        discussion: """
            Connects to the server in the kit over mutual TLS, waits for a job that lists this site, trains on \
            --data with the job's pipeline each round and sends back only the weight diff, through the filters in \
            the kit's filters.yaml. The kit's training-policy.yaml says which jobs the site takes; every DP update \
            is charged to the site's privacy ledger (shared with statistics queries) before it leaves, and a round \
            that would pass the site's budget (site-policy.yaml) is declined with the reason. Network errors are \
            retried with exponential backoff and jitter; the client only \
            exits on --once (after one job) or on an error that retrying cannot fix.
            """)

    @OptionGroup var kit: KitOptions

    @Option(help: "The site's DICOM folder (series and their SEG label maps).")
    var data: String

    @Option(
        help: """
            Classification jobs: the site's labels CSV (default: the pipeline's `classification.labels.csv` inside \
            --data). Stays at the site; only aggregate figures leave it.
            """)
    var labels: String?

    @Flag(help: "Exit after one job instead of waiting for the next.")
    var once = false

    @Option(help: "Longest wait between reconnection attempts, seconds (\(Self.retryCapRange)).")
    var retryCap: Double = 30

    /// The range of `--retry-cap`, seconds.
    static let retryCapRange = 0.2...3600.0

    @Option(
        help:
            """
            The site's privacy policy for statistics queries (default: site-policy.yaml in the kit, else built-in \
            defaults).
            """
    )
    var policy: String?

    @Option(help: "The site's privacy ledger, SQLite (default: privacy-ledger.sqlite in the kit folder).")
    var ledger: String?

    @Option(
        help: """
            The site's limits for the jobs' pipelines and queries (default: limits.yaml in the kit, else built-in \
            defaults; see docs/limits-pipeline.md).
            """)
    var limits: String?

    @Option(
        help: """
            The site's egress log, SQLite: one row per result that left the site (default: \
            \(EgressLog.fileName) in the kit folder). List it with `tessera egress`.
            """)
    var egressLog: String?

    @OptionGroup var monitoring: MonitoringOptions

    @OptionGroup var tracking: TrackingOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard Self.retryCapRange.contains(retryCap) else {
            throw ValidationError(
                "--retry-cap \(retryCap) is outside \(Self.retryCapRange) seconds: give the longest wait between "
                    + "reconnection attempts, e.g. --retry-cap 30")
        }
    }

    func run() throws {
        common.apply()
        // A site trains: the same large buffers every step, reused (see MemoryPolicy). Not the server, whose
        // buffers differ from round to round and whose resident size is its budget.
        MemoryPolicy.retainFreedMemory()
        let (pipelineLimits, queryLimits) = try LimitsFile.load(limits, kitFolder: self.kit.kit)
        let egressPath = egressLog ?? (self.kit.kit + "/" + EgressLog.fileName)
        let egress: EgressLog
        do { egress = try EgressLog(path: egressPath) } catch { throw CommandFailure(description: error.description) }
        let (kit, tls, address) = try self.kit.load(roles: [.site])
        let filters: FilterChain
        let sharesLocalModel: Bool
        let trainingPolicy: SiteTrainingPolicy
        do {
            filters = try SiteFilterPolicy.load(kitFolder: self.kit.kit)
            sharesLocalModel = try SiteFilterPolicy.sharesLocalModel(kitFolder: self.kit.kit)
            trainingPolicy = try SiteTrainingPolicy.load(kitFolder: self.kit.kit)
        } catch {
            throw CommandFailure(description: error.description)
        }
        let policyPath = policy ?? (self.kit.kit + "/site-policy.yaml")
        var sitePolicy = SitePolicy()
        if policy != nil || FileManager.default.fileExists(atPath: policyPath) {
            do { sitePolicy = try SitePolicy.load(path: policyPath) } catch {
                throw CommandFailure(description: error.description)
            }
        }
        let ledgerPath = ledger ?? (self.kit.kit + "/privacy-ledger.sqlite")
        let book: PrivacyLedger
        let budget: PrivacyBudget
        do {
            book = try PrivacyLedger(path: ledgerPath)
            budget = try sitePolicy.budget()
        } catch {
            throw CommandFailure(description: "\(error)")
        }
        let site = kit.name
        let data = self.data
        let labels = self.labels
        let once = self.once
        let frozenPolicy = sitePolicy
        let retry = RetryPolicy(base: .milliseconds(200), cap: .seconds(retryCap))  // in retryCapRange (validate)
        let prefix = "[\(site)]"
        // The kit's certificate and key sign this site's secure-aggregation keys; its CA checks everyone else's.
        let secure: SecureAggregationCredentials
        do {
            secure = try SecureAggregationCredentials.load(
                site: site, certificatePath: kit.certificatePath, privateKeyPath: kit.privateKeyPath,
                caPath: kit.caCertificatePath, minimumParticipants: max(2, trainingPolicy.minParticipants))
        } catch {
            throw CommandFailure(description: error.description)
        }
        let secureSum = SecureSumCredentials(
            identity: secure.identity, verifier: secure.verifier, minimumParticipants: secure.minimumParticipants)
        let metricsAddress = try monitoring.address()
        let tensorboard = tracking.tensorboard
        try runBlocking {
            let connection = try GRPCFederationConnection(
                host: address.host, port: address.port, tls: tls,
                serverName: kit.serverAddress.host)
            let metrics = metricsAddress.map { _ in SiteMetrics() }
            let endpoint = try await metricsAddress.asyncMap { address in
                try await MonitoringOptions.serve(at: address, who: prefix) { metrics?.render() ?? "" }
            }
            let curves = tensorboard.map { SiteCurves(folder: $0) { log("\(prefix) \($0)") } }
            let trainer = PipelineSiteTrainer(
                dataFolder: data, limits: pipelineLimits, labelsPath: labels, onEpoch: curves?.epoch
            ) {
                log("\(prefix) \($0)")
            }
            let statistics = StatisticsSiteHandler(
                site: site, dataFolder: data, policy: frozenPolicy, ledger: book,
                limits: queryLimits, secureSum: secureSum
            ) {
                log("\(prefix) \($0)")
            }
            let tracked: any LocalTrainer = curves.map { TrackedTrainer(base: trainer, curves: $0) } ?? trainer
            var agent = SiteAgent(
                site: site, connection: metrics?.connection(connection) ?? connection, trainer: tracked,
                filters: filters,
                clock: ContinuousClock(), retry: retry, statistics: statistics)
            agent.sharesLocalModel = sharesLocalModel
            agent.gatekeeper = SitePrivacyGatekeeper(
                site: site, policy: trainingPolicy, budget: budget, ledger: book,
                limits: pipelineLimits)
            agent.egressLog = egress
            agent.secureAggregation = secure
            // Values of the variables the site keeps to itself (exclude_variables, FedBN), one file per job.
            agent.localVariablesFolder = self.kit.kit + "/" + LocalVariables.folderName
            log(
                "\(prefix) connecting to \(address) (filters: \(filters.filters.map(\.name).joined(separator: ", ")); "
                    + "egress log \(egressPath))")
            while true {
                let rounds = try await agent.run()
                log("\(prefix) job over; contributed to round(s) \(rounds.map(String.init).joined(separator: ", "))")
                if once { break }
            }
            await connection.close()
            await endpoint?.stop()
        }
    }
}

struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the server's jobs with an admin kit (project lead, member or site admin).",
        discussion: """
            What a kit may do depends on its role (docs/operations-access.md): the project lead (role admin) \
            everything; a member submits, reads, downloads and aborts its own jobs; a site admin reads the jobs, \
            logs and connection of its own site only. The server refuses anything else (permission denied, with the \
            reason) and records every call in its audit log.
            """,
        subcommands: [Submit.self, Status.self, Abort.self, Download.self, Watch.self, Logs.self, Sites.self])

    @OptionGroup var kit: KitOptions

    /// Runs `body` with an admin connection.
    static func with<T: Sendable>(
        _ options: KitOptions,
        _ body: @escaping @Sendable (GRPCAdminConnection) async throws -> T
    ) throws -> T {
        let (kit, tls, address) = try options.load(roles: ParticipantRole.administrators)
        return try runBlocking {
            let connection = try GRPCAdminConnection(
                host: address.host, port: address.port, tls: tls,
                serverName: kit.serverAddress.host)
            do {
                let value = try await body(connection)
                await connection.close()
                return value
            } catch let error as FederationError {
                await connection.close()
                throw CommandFailure(description: error.description)
            }
        }
    }

    /// Prints the job's events until it ends; returns true when it finished.
    static func follow(_ connection: GRPCAdminConnection, jobID: String) async throws -> Bool {
        var ok = false
        for try await event in connection.watch(jobID: jobID) {
            say("\(jobID): \(JobManager.describe(event))")
            if case .jobFinished = event { ok = true }
        }
        return ok
    }

    struct Submit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Submit a pipeline YAML as a job; prints its id.")
        @ParentCommand var admin: Admin
        @Argument(help: "Pipeline YAML (its federation.sites name the participating sites).") var pipeline: String
        @Option(help: "Job name (default: the pipeline's file name).") var name: String?
        @Flag(help: "Follow the job's events until it ends (exit status 1 if it fails).") var watch = false

        func run() throws {
            let text = try readPipeline(pipeline)
            let name = self.name ?? URL(fileURLWithPath: pipeline).deletingPathExtension().lastPathComponent
            let watch = self.watch
            let ok = try Admin.with(admin.kit) { connection in
                let id = try await connection.submit(pipeline: text, name: name)
                say(id)
                return watch ? try await Admin.follow(connection, jobID: id) : true
            }
            if !ok { throw ExitCode(1) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job or all jobs.")
        @ParentCommand var admin: Admin
        @Argument(help: "Job id (default: all).") var job: String?
        @Flag(help: "JSON instead of a table.") var json = false

        func run() throws {
            let job = self.job
            let jobs = try Admin.with(admin.kit) { try await $0.status(jobID: job) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(jobs), as: UTF8.self))
                return
            }
            for j in jobs {
                print(
                    "\(j.jobID)  \(j.name)  \(j.kind.rawValue)  \(j.state.rawValue)  "
                        + "round \(j.completedRounds)/\(j.rounds)  "
                        + "submitted \(j.submittedAt) by \(j.submittedBy)"
                        + (j.finishedAt.isEmpty ? "" : ", ended \(j.finishedAt)")
                        + (j.reason.isEmpty ? "" : ": \(j.reason)"))
                for s in j.siteStates {
                    let seen = s.secondsSinceSeen.map { String(format: "%.1f s ago", $0) } ?? "never"
                    let dice =
                        s.lastMetrics["dice"].map { String(format: ", Dice %.3f", $0) }
                        ?? s.lastMetrics["auc"].map { String(format: ", AUC %.3f", $0) } ?? ""
                    // What the site's own ledger says it spent (it reports it with each DP update).
                    var privacy = ""
                    if let e = s.lastMetrics["dp_epsilon"] {
                        privacy = String(format: ", ε spent on this job %.3g", e)
                        if let total = s.lastMetrics["dp_epsilon_site_total"] {
                            privacy +=
                                String(format: " (site total %.3g", total)
                                + (s.lastMetrics["dp_delta"].map { String(format: ", δ = %.0e)", $0) } ?? ")")
                        }
                    }
                    print("    \(s.site): seen \(seen), last result round \(s.lastRound)\(dice)\(privacy)")
                }
            }
        }
    }

    struct Abort: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a queued or running job (checkpoints stay).")
        @ParentCommand var admin: Admin
        @Argument(help: "Job id.") var job: String

        func run() throws {
            let job = self.job
            try Admin.with(admin.kit) { try await $0.abort(jobID: job) }
            print("\(job) aborted")
        }
    }

    struct Download: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a job's files (global model, metrics).")
        @ParentCommand var admin: Admin
        @Argument(help: "Job id.") var job: String
        @Option(name: .shortAndLong, help: "Folder to write into.") var output: String = "."

        func run() throws {
            let job = self.job
            let output = self.output
            for path in try Admin.with(admin.kit, { try await $0.download(jobID: job, to: output) }) { print(path) }
        }
    }

    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a job's log: its admin calls, state changes and events, from the server's audit log.")
        @ParentCommand var admin: Admin
        @Argument(help: "Job id.") var job: String
        @Flag(help: "JSON lines (one entry per line) instead of text.") var json = false

        func run() throws {
            let job = self.job
            let entries = try Admin.with(admin.kit) { try await $0.log(jobID: job) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for entry in entries {
                if json {
                    print(String(decoding: try encoder.encode(entry), as: UTF8.self))
                    continue
                }
                let who =
                    entry.kind == .admin
                    ? "\(entry.actor) (\(entry.role)) \(entry.action) \(entry.outcome.rawValue)" : entry.kind.rawValue
                print("\(entry.sequence)  \(entry.time)  \(who)\(entry.detail.isEmpty ? "" : ": \(entry.detail)")")
            }
        }
    }

    struct Sites: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the sites the server has heard from: last contact, version, current task.")
        @ParentCommand var admin: Admin
        @Flag(help: "JSON instead of a table.") var json = false

        func run() throws {
            let sites = try Admin.with(admin.kit) { try await $0.sites() }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(sites), as: UTF8.self))
                return
            }
            if sites.isEmpty { print("no site has called since the server started") }
            for s in sites {
                print(
                    "\(s.site)  last contact \(s.lastContact) "
                        + "(\(String(format: "%.1f", s.secondsSinceContact)) s ago)  "
                        + "version \(s.version.isEmpty ? "unknown" : s.version)  "
                        + (s.currentTask.isEmpty ? "idle" : s.currentTask))
            }
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Follow a job's events until it ends.")
        @ParentCommand var admin: Admin
        @Argument(help: "Job id.") var job: String

        func run() throws {
            let job = self.job
            if !(try Admin.with(admin.kit) { try await Admin.follow($0, jobID: job) }) { throw ExitCode(1) }
        }
    }
}

/// `limits.yaml`: the server's or a site's limits for pipelines (`pipeline:`) and queries (`query:`).
enum LimitsFile {
    /// Reads `path`, or `<kit>/limits.yaml` when it exists; the built-in defaults otherwise.
    static func load(_ path: String?, kitFolder: String) throws -> (PipelineLimits, QueryLimits) {
        let file = path ?? (kitFolder + "/limits.yaml")
        guard path != nil || FileManager.default.fileExists(atPath: file) else { return (.default, .default) }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CommandFailure(description: "cannot read the limits file \(file)")
        }
        let text = String(decoding: data, as: UTF8.self)
        do {
            return (try PipelineLimits(yaml: text), try QueryLimits(yaml: text))
        } catch let error as TrainingError {
            throw CommandFailure(description: "\(file): \(error.message)")
        } catch let error as AnalyticsError {
            throw CommandFailure(description: "\(file): \(error.message)")
        }
    }
}

/// `--metrics-address`: the Prometheus endpoint of `tessera server` and `tessera client` (off unless given).
struct MonitoringOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; port 0: any free port, logged). \
            Bind it to loopback (127.0.0.1:9464) unless the monitoring network needs it; there is no TLS or \
            authentication. See docs/operations-observability.md.
            """, valueName: "host:port"))
    var metricsAddress: String?

    /// The parsed address, nil when metrics are off. Port 0 picks a free port (the log line names it).
    func address() throws -> ServerAddress? {
        guard let text = metricsAddress else { return nil }
        if text.hasSuffix(":0"), let parsed = ServerAddress(parsing: text.dropLast() + "1") {
            return ServerAddress(host: parsed.host, port: 0)
        }
        guard let parsed = ServerAddress(parsing: text) else {
            throw CommandFailure(description: "--metrics-address '\(text)' is not host:port (e.g. 127.0.0.1:9464)")
        }
        return parsed
    }

    /// Starts the endpoint and says where it listens.
    static func serve(
        at address: ServerAddress, who: String, render: @escaping @Sendable () async -> String
    ) async throws -> MetricsEndpoint {
        let endpoint = MetricsEndpoint(host: address.host, port: address.port, render: render)
        let port = try await endpoint.start()
        log("\(who) metrics at http://\(address.host):\(port)/metrics")
        return endpoint
    }
}

extension Optional {
    /// `map` with an async transform.
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

/// `--tensorboard DIR`: TensorBoard event files of `tessera train`, `server` and `client` (off unless given).
struct TrackingOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Write TensorBoard event files under this folder (off by default): `tensorboard --logdir DIR` shows \
            them. See docs/operations-observability.md for the runs and tags each command writes.
            """, valueName: "dir"))
    var tensorboard: String?
}
