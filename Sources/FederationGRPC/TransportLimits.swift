/// Transport tuning shared by server and client.
public struct TransportLimits: Sendable, Equatable {
    /// Largest accepted gRPC message, bytes: one chunk plus its small header. Anything larger is refused by the
    /// transport (RESOURCE_EXHAUSTED) before it reaches the service.
    public var maxMessageBytes: Int
    /// Values per chunk on the wire; larger chunks are split before sending. 4 bytes each. Each HTTP/2 stream may
    /// queue about ten messages on the receiving side (NIOAsyncChannel's watermark, not configurable) plus the
    /// window, so the chunk size sets much of what the server buffers per uploading site: 128K values (512 KiB
    /// messages) measured here at 25M parameters × 16 sites: server peak 456 MiB against 568–632 MiB with 256K
    /// values, for the same CPU per round; 64K values cost three times the server's CPU.
    public var chunkScalars: Int
    /// HTTP/2 flow-control window. docs/ARCHITECTURE.md, build facts: 8 MiB gave 760–960 MB/s for one stream over
    /// loopback with mTLS (the 64 KiB default caps uploads near 100 MB/s); with 16 sites at once, the server's peak RSS
    /// grows with the window (measured at 25M parameters × 16 sites: 8 MiB windows and 4 MiB chunks 3.9 GB, 1 MiB
    /// windows and 1 MiB chunks 0.9–1.5 GB), so the default is 1 MiB.
    public var targetWindowSize: Int
    /// HTTP/2 frame size (256 KiB, same measurement; the default is 16 KiB).
    public var maxFrameSize: Int
    /// Chunks the server sends per DownloadModel call (4 × 512 KiB); the site pulls the model range by range.
    /// grpc-swift's server writer does not wait for the HTTP/2 window (a handler that writes a whole model has it all
    /// queued in the transport at once: 1.3 GB at 25M parameters × 16 sites), so this bounds what the server holds
    /// per download: about this many encoded chunks. Each call costs a stream and a handler (about 0.1 CPU-s per
    /// round at 25M × 3 for calls of 2 MiB).
    public var downloadChunksPerCall: Int
    /// The smallest chunk the server cuts a download into, values: a DownloadModel call asking for fewer values per
    /// chunk gets chunks of this size (the last one of a tensor may be shorter). Each chunk costs the server a struct
    /// and a message header (about 72 bytes and a few µs), so `max_scalars = 1` would cost it 72 bytes and a message
    /// per parameter; 4K values (16 KiB) keep that overhead under 0.5 %. The server clamps what a client asks into
    /// [`minChunkScalars`, `chunkScalars`] (a floor above `chunkScalars` counts as `chunkScalars`).
    public var minChunkScalars: Int
    /// Timeouts, connection caps and keepalive (`ConnectionLimits`).
    public var connection: ConnectionLimits

    public init(
        maxMessageBytes: Int = 4 << 20 + 64 << 10, chunkScalars: Int = 1 << 17,
        targetWindowSize: Int = 1 << 20, maxFrameSize: Int = 256 << 10, downloadChunksPerCall: Int = 4,
        minChunkScalars: Int = 4 << 10, connection: ConnectionLimits = .defaults
    ) {
        precondition(chunkScalars > 0 && chunkScalars * 4 < maxMessageBytes, "a chunk must fit in one message")
        precondition(downloadChunksPerCall > 0, "a download call sends at least one chunk")
        precondition(minChunkScalars > 0, "the download chunk floor is at least one value")
        self.maxMessageBytes = maxMessageBytes
        self.chunkScalars = chunkScalars
        self.targetWindowSize = targetWindowSize
        self.maxFrameSize = maxFrameSize
        self.downloadChunksPerCall = downloadChunksPerCall
        self.minChunkScalars = minChunkScalars
        self.connection = connection
    }

    /// The values per chunk of a DownloadModel call that asks for `asked` (0 or less: no preference): clamped into
    /// [`minChunkScalars`, `chunkScalars`].
    public func downloadChunkScalars(asked: Int) -> Int {
        guard asked > 0 else { return chunkScalars }
        return min(max(asked, minChunkScalars), chunkScalars)
    }

    public static let defaults = TransportLimits()
}
