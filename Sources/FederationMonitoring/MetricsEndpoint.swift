import FederationCore
import NIOCore
import NIOPosix
import Synchronization

/// A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics` answers the text exposition format
/// (version 0.0.4) that `render` produces; any other request line answers 404, a request whose head is not complete
/// within `maxRequestBytes` answers 431, a malformed one 400. One request per connection (`Connection: close`).
///
/// Bounded before anything is allocated from outside data: the request head (`maxRequestBytes`), connections open at
/// once (`maxConnections`, more are closed at accept), and a read deadline (`readTimeout`). There is no TLS and no
/// authentication: bind it to loopback (the default) or to an interface only the monitoring network reaches.
public final class MetricsEndpoint: Sendable {
    /// Bounds of the endpoint.
    public struct Limits: Sendable, Equatable {
        /// Largest request head (request line and headers), bytes.
        public var maxRequestBytes = 8192
        /// Connections open at once; more are closed as they are accepted.
        public var maxConnections = 16
        /// A connection that has not sent its whole request head by then is closed.
        public var readTimeout: Duration = .seconds(10)

        public init() {}
    }

    public let host: String
    public let port: Int
    public let limits: Limits
    private let render: @Sendable () async -> String
    private let channel = Mutex<(any Channel)?>(nil)
    private let open = Atomic<Int>(0)

    /// - Parameters:
    ///   - host: the address to listen on (`127.0.0.1` by default; `0.0.0.0` exposes it to the network).
    ///   - port: the TCP port; 0 picks a free one (`start()` returns it).
    ///   - render: the exposition text, computed for each scrape.
    public init(
        host: String = "127.0.0.1", port: Int, limits: Limits = Limits(),
        render: @escaping @Sendable () async -> String
    ) {
        self.host = host
        self.port = port
        self.limits = limits
        self.render = render
    }

    /// Starts listening; returns the bound port.
    /// - Throws: `.invalidConfiguration` when the address cannot be bound.
    public func start() async throws(FederationError) -> Int {
        let limits = self.limits
        let render = self.render
        let endpoint = self
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard endpoint.admit() else { return channel.close() }
                channel.closeFuture.whenComplete { _ in endpoint.release() }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: TimeAmount(limits.readTimeout)))
                    try sync.addHandler(ScrapeHandler(limits: limits, render: render))
                }
            }
        do {
            let bound = try await bootstrap.bind(host: host, port: port).get()
            channel.withLock { $0 = bound }
            return bound.localAddress?.port ?? port
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "the metrics endpoint cannot listen on \(host):\(port); choose another --metrics-address",
                cause: "\(error)")
        }
    }

    /// Stops listening (connections in progress finish).
    public func stop() async {
        guard
            let bound = channel.withLock({ c in
                defer { c = nil }
                return c
            })
        else { return }
        try? await bound.close().get()
    }

    private func admit() -> Bool {
        let now = open.add(1, ordering: .relaxed).newValue
        guard now <= limits.maxConnections else {
            open.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    private func release() { open.subtract(1, ordering: .relaxed) }
}

/// One connection: reads the request head (bounded), answers once, closes.
private final class ScrapeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let limits: MetricsEndpoint.Limits
    private let render: @Sendable () async -> String
    private var head: [UInt8] = []
    private var answered = false

    init(limits: MetricsEndpoint.Limits, render: @escaping @Sendable () async -> String) {
        self.limits = limits
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        var buffer = unwrapInboundIn(data)
        let room = limits.maxRequestBytes - head.count
        let take = min(buffer.readableBytes, room)
        head += buffer.readBytes(length: take) ?? []
        if let end = Self.headEnd(head) {
            respond(context: context, to: Array(head[..<end]))
        } else if buffer.readableBytes > 0 || head.count >= limits.maxRequestBytes {
            answer(context: context, status: "431 Request Header Fields Too Large", body: "")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    /// Index of the blank line that ends the head (`\r\n\r\n`), nil until it has arrived.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func respond(context: ChannelHandlerContext, to head: [UInt8]) {
        let requestLine = head.split(separator: 13, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            answer(context: context, status: "400 Bad Request", body: "")
            return
        }
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard parts[0] == "GET", path == "/metrics" else {
            answer(context: context, status: "404 Not Found", body: "")
            return
        }
        answered = true
        let channel = context.channel
        let render = self.render
        let promise = context.eventLoop.makePromise(of: String.self)
        promise.completeWithTask { await render() }
        promise.futureResult.whenSuccess { text in
            channel.writeAndFlush(Self.response(status: "200 OK", body: text, channel: channel)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private func answer(context: ChannelHandlerContext, status: String, body: String) {
        answered = true
        let channel = context.channel
        channel.writeAndFlush(Self.response(status: status, body: body, channel: channel)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    static func response(status: String, body: String, channel: any Channel) -> ByteBuffer {
        let bytes = Array(body.utf8)
        let head =
            "HTTP/1.1 \(status)\r\n"
            + (bytes.isEmpty ? "" : "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n")
            + "Content-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        var buffer = channel.allocator.buffer(capacity: head.utf8.count + bytes.count)
        buffer.writeString(head)
        buffer.writeBytes(bytes)
        return buffer
    }
}
