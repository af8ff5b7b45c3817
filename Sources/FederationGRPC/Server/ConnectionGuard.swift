import NIOCore
import NIOSSL
import NIOTLS
import Synchronization
import X509

/// Admits the server's TCP connections (`ConnectionLimits`): a TLS handshake deadline, a cap on connections still
/// in their handshake (the oldest is closed to make room, so silent connections cannot lock sites out), caps on
/// authenticated connections in all and per client certificate, and a read timeout once authenticated.
///
/// grpc-swift-nio-transport 2.9 has no handshake timeout or connection cap, and its idle and keepalive timeouts end
/// a connection with GOAWAY and a PING that a silent peer never answers (the connection then stays open), so the
/// guard sits in each accepted channel's pipeline right after the TLS handler (`install(on:)`, run by the
/// transport's accept callback) and closes what it refuses outright.
final class ConnectionGuard: Sendable {
    typealias Statistics = ConnectionStatistics

    private struct State {
        var nextID = 0
        /// Connections in their handshake, oldest first.
        var pending: [(id: Int, channel: any Channel)] = []
        /// Authenticated connections: id → the peer's certificate subject.
        var established: [Int: String] = [:]
        var perPeer: [String: Int] = [:]
        var counts = Statistics()
    }

    let limits: ConnectionLimits
    /// Where refusals after the handshake are said (the caps); timeouts and evictions are only counted, as a flood
    /// of them would flood the log.
    let log: (@Sendable (String) -> Void)?
    private let state = Mutex(State())
    /// Application bytes (HTTP/2 frames, after TLS) read from and written to authenticated connections.
    private let bytesIn = Atomic<Int>(0)
    private let bytesOut = Atomic<Int>(0)

    init(limits: ConnectionLimits, log: (@Sendable (String) -> Void)? = nil) {
        self.limits = limits
        self.log = log
    }

    var statistics: Statistics {
        state.withLock { s in
            var counts = s.counts
            counts.pendingHandshakes = s.pending.count
            counts.established = s.established.count
            counts.bytesIn = bytesIn.load(ordering: .relaxed)
            counts.bytesOut = bytesOut.load(ordering: .relaxed)
            return counts
        }
    }

    fileprivate func transferred(in read: Int, out written: Int) {
        if read > 0 { bytesIn.add(read, ordering: .relaxed) }
        if written > 0 { bytesOut.add(written, ordering: .relaxed) }
    }

    /// Adds the guard's handlers to an accepted connection, after its TLS handler. Runs on the channel's event loop
    /// (the transport's `onAcceptTCPConnection`).
    func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            let tls = try sync.handler(type: NIOSSLServerHandler.self)
            let idle = IdleStateHandler(readTimeout: TimeAmount(limits.readTimeout))
            try sync.addHandler(idle, position: .after(tls))
            try sync.addHandler(AdmissionHandler(guard: self, tls: tls), position: .after(idle))
        }
    }

    // MARK: - Bookkeeping (any thread)

    /// Registers a connection in its handshake; returns its id and the connection to close to make room, if any.
    fileprivate func admit(_ channel: any Channel) -> (id: Int, evict: (any Channel)?) {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.counts.accepted += 1
            var evict: (any Channel)?
            if s.pending.count >= limits.maxPendingHandshakes {
                evict = s.pending.removeFirst().channel
                s.counts.evicted += 1
            }
            s.pending.append((id, channel))
            return (id, evict)
        }
    }

    /// Moves a connection from its handshake to the authenticated ones; returns why it is refused, if it is.
    fileprivate func establish(id: Int, peer: String) -> String? {
        state.withLock { s in
            guard let index = s.pending.firstIndex(where: { $0.id == id }) else {
                return "its handshake slot was given to a newer connection"
            }
            s.pending.remove(at: index)
            if s.established.count >= limits.maxConnections {
                s.counts.refused += 1
                return "the server holds \(limits.maxConnections) connections (maxConnections)"
            }
            if s.perPeer[peer, default: 0] >= limits.maxConnectionsPerPeer {
                s.counts.refused += 1
                return "\(peer) holds \(limits.maxConnectionsPerPeer) connections (maxConnectionsPerPeer)"
            }
            s.established[id] = peer
            s.perPeer[peer, default: 0] += 1
            return nil
        }
    }

    fileprivate func closed(id: Int) {
        state.withLock { s in
            s.pending.removeAll { $0.id == id }
            if let peer = s.established.removeValue(forKey: id) {
                let left = s.perPeer[peer, default: 1] - 1
                s.perPeer[peer] = left > 0 ? left : nil
            }
        }
    }

    fileprivate func count(_ outcome: WritableKeyPath<Statistics, Int>) {
        state.withLock { $0.counts[keyPath: outcome] += 1 }
    }
}

/// One connection's admission: the handshake deadline, then the caps, then the read timeout (`IdleStateHandler`
/// before it fires the event). Sits right after the TLS handler, so it sees the handshake's completion first, and
/// every plaintext byte that goes in and out (counted for the metrics).
private final class AdmissionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connectionGuard: ConnectionGuard
    private let tls: NIOSSLServerHandler
    private var id: Int?
    private var authenticated = false
    private var handshakeDeadline: Scheduled<Void>?

    init(guard connectionGuard: ConnectionGuard, tls: NIOSSLServerHandler) {
        self.connectionGuard = connectionGuard
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard id == nil else { return }
        let (id, evict) = connectionGuard.admit(context.channel)
        self.id = id
        evict?.close(promise: nil)
        let channel = context.channel
        let connectionGuard = self.connectionGuard
        handshakeDeadline = context.eventLoop.scheduleTask(in: TimeAmount(connectionGuard.limits.handshakeTimeout)) {
            connectionGuard.count(\.handshakeTimeouts)
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, let id, !authenticated {
            handshakeDeadline?.cancel()
            handshakeDeadline = nil
            let peer = peerName()
            if let refusal = connectionGuard.establish(id: id, peer: peer) {
                let address = context.channel.remoteAddress.map { "\($0)" } ?? "?"
                connectionGuard.log?("connection from \(peer) at \(address) closed: \(refusal)")
                context.close(promise: nil)
                return
            }
            authenticated = true
        } else if let idle = event as? IdleStateHandler.IdleStateEvent, case .read = idle {
            // Nothing read for keepaliveInterval + keepaliveTimeout: the server's keepalive pings went unanswered.
            connectionGuard.count(authenticated ? \.readTimeouts : \.handshakeTimeouts)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connectionGuard.transferred(in: unwrapInboundIn(data).readableBytes, out: 0)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        connectionGuard.transferred(in: 0, out: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        handshakeDeadline = nil
        if let id { connectionGuard.closed(id: id) }
        context.fireChannelInactive()
    }

    /// The client certificate's subject (the handshake verified it against the project CA), the key of the
    /// per-peer cap.
    private func peerName() -> String {
        guard let certificate = tls.peerCertificate,
            let subject = try? Certificate(derEncoded: certificate.toDERBytes()).subject
        else { return "?" }
        return subject.description
    }
}
