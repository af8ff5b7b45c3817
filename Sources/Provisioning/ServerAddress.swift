/// Where clients reach the server: a host name or IP literal and a TCP port.
public struct ServerAddress: Sendable, Hashable, CustomStringConvertible {
    /// A DNS name (`localhost`, `fl.example.org`) or an IPv4/IPv6 literal, without brackets.
    public var host: String
    /// The TCP port, 1...65535.
    public var port: Int

    /// Creates an address; the caller has validated `host` and `port`.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 literal in brackets (`[::1]:8443`).
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Parses `host:port` or `[ipv6]:port`; `nil` when the text has no valid port.
    public init?(parsing text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (1...65535).contains(port) else { return nil }
        self.init(host: String(hostPart), port: port)
    }

    /// The four bytes of `host` if it is a dotted-quad IPv4 literal.
    public var ipv4Bytes: [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let value = UInt8(part) else {
                return nil
            }
            bytes.append(value)
        }
        return bytes
    }

    /// The sixteen bytes of `host` if it is an IPv6 literal (RFC 4291 text form, `::` compression, no zone).
    public var ipv6Bytes: [UInt8]? {
        guard host.contains(":"), !host.contains("%") else { return nil }
        let halves = host.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ text: String) -> [UInt16]? {
            if text.isEmpty { return [] }
            var result: [UInt16] = []
            for group in text.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// Whether `host` is a syntactically valid DNS name (RFC 1123 labels: letters, digits, hyphens; 1–63 each).
    var isDNSName: Bool {
        guard !host.isEmpty, host.utf8.count <= 253, ipv4Bytes == nil else { return false }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            (1...63).contains(label.count) && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// Whether the host names this machine's loopback interface (`localhost`, `127.0.0.1`, `::1`).
    var isLoopback: Bool {
        host.lowercased() == "localhost" || host == "127.0.0.1" || ipv6Bytes == Array(repeating: 0, count: 15) + [1]
    }
}
