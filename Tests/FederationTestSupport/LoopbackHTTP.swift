import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to loopback, and an HTTP/1.1 exchange over one (the metrics endpoint's tests): send a
/// request, read until the server closes; and the samples of a Prometheus exposition text.
public enum LoopbackHTTP {
    /// `name{labels}` → value of every sample line of an exposition text.
    public static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            out[String(line[..<space])] = value
        }
        return out
    }

    /// Sends `text` over a TCP connection to 127.0.0.1:`port` and reads until the server closes (5 s bound).
    public static func request(_ text: String, port: Int) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try blockingRequest(text, port: port) })
            }
        }
    }

    static func blockingRequest(_ text: String, port: Int) throws -> String {
        let fd = try LoopbackHTTP.connect(port: port)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // The server may answer 431 and close before the whole request is sent.
            if n <= 0 { break }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    /// A TCP connection to 127.0.0.1:`port`: its descriptor, which the caller closes.
    /// - Throws: `SocketFailure` naming the call that failed and its errno.
    public static func connect(port: Int) throws(SocketFailure) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw SocketFailure(call: "connect", code: code)
        }
        return fd
    }
}

/// A socket call that failed: its name and errno.
public struct SocketFailure: Error {
    public var call: String
    public var code: Int32
}
