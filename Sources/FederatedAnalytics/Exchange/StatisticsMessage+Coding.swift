import Foundation

// MARK: - JSON bytes for the runtime

extension StatisticsRequest {
    /// The request as JSON bytes (vectors as base64 of little-endian words).
    public func encoded() throws(AnalyticsError) -> Data { try encodeMessage(self, what: "statistics request") }

    /// Decodes a request from JSON bytes.
    /// - Throws: `.malformedMessage` when the bytes are not a request of this protocol version.
    public init(decoding data: Data) throws(AnalyticsError) {
        self = try decodeMessage(StatisticsRequest.self, from: data, what: "statistics request")
        guard version == Self.protocolVersion else {
            throw AnalyticsError(
                .malformedMessage,
                "statistics request of protocol version \(version), this site speaks "
                    + "version \(Self.protocolVersion); run the same Tessera version on the server and the sites")
        }
    }
}

extension StatisticsResponse {
    /// The response as JSON bytes (vectors as base64 of little-endian words).
    public func encoded() throws(AnalyticsError) -> Data { try encodeMessage(self, what: "statistics response") }

    /// Decodes a response from JSON bytes.
    /// - Throws: `.malformedMessage` when the bytes are not a response of this protocol version.
    public init(decoding data: Data) throws(AnalyticsError) {
        self = try decodeMessage(StatisticsResponse.self, from: data, what: "statistics response")
        guard version == StatisticsRequest.protocolVersion else {
            throw AnalyticsError(
                .malformedMessage,
                "statistics response of protocol version \(version), the server speaks "
                    + "version \(StatisticsRequest.protocolVersion); run the same Tessera version on the "
                    + "server and the sites")
        }
    }
}

private func encodeMessage<T: Encodable>(_ value: T, what: String) throws(AnalyticsError) -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf",
        nan: "nan")
    do { return try encoder.encode(value) } catch {
        throw AnalyticsError(.malformedMessage, "cannot encode the \(what) as JSON", cause: "\(error)")
    }
}

private func decodeMessage<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws(AnalyticsError) -> T {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
        positiveInfinity: "inf", negativeInfinity: "-inf",
        nan: "nan")
    do { return try decoder.decode(type, from: data) } catch {
        throw AnalyticsError(
            .malformedMessage,
            "cannot decode a \(what) (\(data.count) bytes): \(describe(error)). The "
                + "message is truncated or corrupt, or the peer runs another Tessera version",
            cause: "\(error)")
    }
}

// MARK: - Vectors as base64 of little-endian 64-bit words

/// 64-bit words ↔ bytes, little-endian: vectors travel as base64 strings (about 11 characters a word instead of up
/// to 20 digits, exact for every bit pattern, NaN included, so the receiver can reject it).
enum WordCoding {
    static func data(_ words: [UInt64]) -> Data {
        var out = Data(capacity: words.count * 8)
        for w in words { withUnsafeBytes(of: w.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func words(_ data: Data, codingPath: [CodingKey]) throws -> [UInt64] {
        guard data.count % 8 == 0 else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: codingPath,
                    debugDescription:
                        "a vector of \(data.count) bytes is not a whole number of 64-bit words"))
        }
        let bytes = [UInt8](data)
        return stride(from: 0, to: bytes.count, by: 8).map { start in
            var w: UInt64 = 0
            for i in 0..<8 { w |= UInt64(bytes[start + i]) << (8 * UInt64(i)) }
            return w
        }
    }
}

extension StatisticsResponse.Upload: Codable {
    enum CodingKeys: String, CodingKey { case masked, clear }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let data = try c.decodeIfPresent(Data.self, forKey: .masked) {
            self = .masked(try WordCoding.words(data, codingPath: c.codingPath + [CodingKeys.masked]))
        } else if let data = try c.decodeIfPresent(Data.self, forKey: .clear) {
            self = .clear(
                try WordCoding.words(data, codingPath: c.codingPath + [CodingKeys.clear]).map(Double.init(bitPattern:)))
        } else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: c.codingPath,
                    debugDescription:
                        "an upload holds either 'masked' or 'clear'"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .masked(let w): try c.encode(WordCoding.data(w), forKey: .masked)
        case .clear(let v): try c.encode(WordCoding.data(v.map(\.bitPattern)), forKey: .clear)
        }
    }
}

extension StatisticsResponse.Recovery: Codable {
    enum CodingKeys: String, CodingKey { case masks }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var masks: [String: [UInt64]] = [:]
        for (site, data) in try c.decode([String: Data].self, forKey: .masks) {
            masks[site] = try WordCoding.words(data, codingPath: c.codingPath + [CodingKeys.masks])
        }
        self.masks = masks
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(masks.mapValues(WordCoding.data), forKey: .masks)
    }
}
