import FederationCore

/// Connection hygiene: how long a peer may take or stay silent, how many connections and streams it may hold, and
/// how long a site waits for each call. Part of `TransportLimits` (`TransportLimits.connection`), shared by server
/// and client; docs/limits-transport.md lists every setting with its default and when to raise it.
///
/// The server side is enforced at accept time, before gRPC sees a connection (`ConnectionGuard`):
/// - a TCP connection must complete its TLS handshake within `handshakeTimeout`, else it is closed;
/// - at most `maxPendingHandshakes` connections may be in their handshake at once: one more closes the oldest, so a
///   flood of silent connections cannot lock a site out (it only shortens the attackers' own handshake time);
/// - at most `maxConnections` authenticated connections in all, `maxConnectionsPerPeer` per client certificate;
/// - an authenticated connection that reads nothing for `keepaliveInterval + keepaliveTimeout` is closed: the server
///   pings a connection after `keepaliveInterval` without reads, and a live peer answers every ping;
/// - a connection with no open call for `idleTimeout` is closed (gracefully: GOAWAY); a long-poll (`NextTask`) is an
///   open call, so a waiting site is never idle;
/// - at most `maxConcurrentStreams` calls at once per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
///
/// The client side: unary calls have a deadline (`callTimeout`), the long-poll a bounded wait (`longPollWait`) after
/// which it is issued again, and streams a progress timeout (`streamProgressTimeout`: no message sent or received
/// for that long abandons the stream, which the site retries).
public struct ConnectionLimits: Sendable, Equatable {
    /// Longest time from TCP accept to a completed TLS handshake; then the server closes the connection.
    public let handshakeTimeout: Duration
    /// Connections in their TLS handshake at once; one more closes the oldest of them.
    public let maxPendingHandshakes: Int
    /// Authenticated connections at once (all peers); more are closed right after their handshake.
    public let maxConnections: Int
    /// Authenticated connections at once per client certificate (subject); more are closed after their handshake.
    public let maxConnectionsPerPeer: Int
    /// Calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); the peer queues the others.
    public let maxConcurrentStreams: Int
    /// A connection with no open call for this long is closed gracefully (GOAWAY); nil: never. Clients close their
    /// own idle connections at ¾ of it, to reconnect only at their next call.
    public let idleTimeout: Duration?
    /// Time without reading before a ping (both sides): keeps NAT entries open and detects dead peers.
    public let keepaliveInterval: Duration
    /// Time a ping may go unanswered. The server closes a connection that reads nothing for
    /// `keepaliveInterval + keepaliveTimeout`.
    public let keepaliveTimeout: Duration
    /// Deadline of every unary call (register, heartbeat, admin calls).
    public let callTimeout: Duration
    /// How long one `NextTask` long-poll waits for a task before the site asks again (the wait is re-issued, the site
    /// sees no error).
    public let longPollWait: Duration
    /// Longest time a stream (model download, result upload, admin download) may go without a message sent or
    /// received; then it is abandoned (a transient error: the site retries).
    public let streamProgressTimeout: Duration

    /// The shortest keepalive interval: the server answers pings more frequent than this with GOAWAY ("too many
    /// pings"), whatever its own `keepaliveInterval`, so that sites and server may differ.
    public static let minimumKeepaliveInterval = Duration.seconds(10)

    /// The server closes an authenticated connection that reads nothing for this long.
    public var readTimeout: Duration { keepaliveInterval + keepaliveTimeout }

    /// - Throws: `.invalidConfiguration` for a count below 1 (below 4 for streams), more connections per peer than in
    ///   all, a duration not above zero, or a keepalive interval below `minimumKeepaliveInterval`.
    public init(
        handshakeTimeout: Duration = .seconds(10), maxPendingHandshakes: Int = 128,
        maxConnections: Int = 1024, maxConnectionsPerPeer: Int = 16, maxConcurrentStreams: Int = 64,
        idleTimeout: Duration? = .seconds(300), keepaliveInterval: Duration = .seconds(60),
        keepaliveTimeout: Duration = .seconds(20), callTimeout: Duration = .seconds(60),
        longPollWait: Duration = .seconds(240),
        streamProgressTimeout: Duration = .seconds(120)
    ) throws(FederationError) {
        self.init(
            unchecked: handshakeTimeout, maxPendingHandshakes, maxConnections, maxConnectionsPerPeer,
            maxConcurrentStreams, idleTimeout, keepaliveInterval, keepaliveTimeout, callTimeout, longPollWait,
            streamProgressTimeout)
        try validate()
    }

    private init(
        unchecked handshakeTimeout: Duration, _ maxPendingHandshakes: Int, _ maxConnections: Int,
        _ maxConnectionsPerPeer: Int, _ maxConcurrentStreams: Int, _ idleTimeout: Duration?,
        _ keepaliveInterval: Duration, _ keepaliveTimeout: Duration, _ callTimeout: Duration,
        _ longPollWait: Duration, _ streamProgressTimeout: Duration
    ) {
        self.handshakeTimeout = handshakeTimeout
        self.maxPendingHandshakes = maxPendingHandshakes
        self.maxConnections = maxConnections
        self.maxConnectionsPerPeer = maxConnectionsPerPeer
        self.maxConcurrentStreams = maxConcurrentStreams
        self.idleTimeout = idleTimeout
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.callTimeout = callTimeout
        self.longPollWait = longPollWait
        self.streamProgressTimeout = streamProgressTimeout
    }

    /// The defaults above (a valid configuration).
    public static let defaults = ConnectionLimits(
        unchecked: .seconds(10), 128, 1024, 16, 64, .seconds(300), .seconds(60), .seconds(20), .seconds(60),
        .seconds(240), .seconds(120))

    /// - Throws: `.invalidConfiguration` naming the first setting out of range and what it must be.
    public func validate() throws(FederationError) {
        func refuse(_ what: String) -> FederationError {
            FederationError(.invalidConfiguration, "connection limits: \(what)")
        }
        for (name, count) in [
            ("maxPendingHandshakes", maxPendingHandshakes), ("maxConnections", maxConnections),
            ("maxConnectionsPerPeer", maxConnectionsPerPeer),
            ("maxConcurrentStreams", maxConcurrentStreams),
        ] where count < 1 {
            throw refuse("\(name) is \(count); it must be at least 1")
        }
        guard maxConnectionsPerPeer <= maxConnections else {
            throw refuse(
                "maxConnectionsPerPeer (\(maxConnectionsPerPeer)) is above maxConnections "
                    + "(\(maxConnections))")
        }
        // A site holds a long-poll, a heartbeat, a download and an upload at once.
        guard maxConcurrentStreams >= 4 else {
            throw refuse("maxConcurrentStreams is \(maxConcurrentStreams); a site needs at least 4 calls at once")
        }
        for (name, duration) in [
            ("handshakeTimeout", handshakeTimeout), ("keepaliveTimeout", keepaliveTimeout),
            ("callTimeout", callTimeout), ("longPollWait", longPollWait),
            ("streamProgressTimeout", streamProgressTimeout),
            ("idleTimeout", idleTimeout ?? .seconds(1)),
        ] where duration <= .zero {
            throw refuse("\(name) is \(duration); it must be above zero")
        }
        // The server refuses client pings more often than every `minimumKeepaliveInterval` ("too many pings").
        guard keepaliveInterval >= Self.minimumKeepaliveInterval else {
            throw refuse(
                "keepaliveInterval is \(keepaliveInterval); it must be at least "
                    + "\(Self.minimumKeepaliveInterval)")
        }
    }
}

/// What the server's connection guard has seen since the server started: connections now, counts of each outcome,
/// and the bytes that went through authenticated connections (`GRPCFederationServer.connectionStatistics`).
public struct ConnectionStatistics: Sendable, Equatable {
    /// Connections accepted and still in their TLS handshake.
    public var pendingHandshakes = 0
    /// Authenticated connections open now.
    public var established = 0
    /// TCP connections accepted since the start.
    public var accepted = 0
    /// Closed for not completing the handshake within `handshakeTimeout`.
    public var handshakeTimeouts = 0
    /// Closed in their handshake to make room (`maxPendingHandshakes`).
    public var evicted = 0
    /// Closed after the handshake: over `maxConnections` or `maxConnectionsPerPeer`.
    public var refused = 0
    /// Authenticated connections closed for reading nothing for `readTimeout`.
    public var readTimeouts = 0
    /// Bytes read from connections after TLS (HTTP/2 frames: gRPC calls of sites and admins), since the start.
    public var bytesIn = 0
    /// Bytes written to connections before TLS, since the start.
    public var bytesOut = 0

    public init() {}
}
