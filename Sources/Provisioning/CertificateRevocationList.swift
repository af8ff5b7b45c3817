import Crypto
import Foundation
import SwiftASN1
import X509

/// The project's certificate revocation list: an X.509 v2 CRL (RFC 5280 §5), DER, signed by the project CA with
/// ECDSA P-256 / SHA-256, that names the serial numbers of revoked participant certificates.
///
/// `tessera provision --revoke NAME` writes it to `<output>/ca/crl.der`; it is copied as `crl.der` into the kits of
/// the server and the sites, whose TLS handshakes refuse a peer certificate it lists. swift-certificates has no CRL
/// type, so this encodes and parses the structure itself with swift-asn1:
///
/// ```
/// CertificateList ::= SEQUENCE { tbsCertList TBSCertList, signatureAlgorithm AlgorithmIdentifier,
///                                signatureValue BIT STRING }
/// TBSCertList ::= SEQUENCE { version INTEGER (v2 = 1), signature AlgorithmIdentifier, issuer Name,
///                            thisUpdate Time, nextUpdate Time,
///                            revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER,
///                                                                       revocationDate Time } OPTIONAL,
///                            crlExtensions [0] EXPLICIT Extensions }
/// ```
/// with the two extensions §5.2 requires of a conforming issuer: authorityKeyIdentifier (2.5.29.35, the CA's subject
/// key identifier) and cRLNumber (2.5.29.20, increasing with each list). Times are UTCTime through 2049 and
/// GeneralizedTime from 2050 (§5.1.2.4), in whole seconds, UTC.
public struct CertificateRevocationList: Sendable, Hashable {
    /// One revoked certificate.
    public struct Entry: Sendable, Hashable {
        /// The certificate's serial number, big-endian, without leading zero bytes.
        public var serialNumber: [UInt8]
        /// When it was revoked (whole seconds).
        public var revocationDate: Date

        public init(serialNumber: [UInt8], revocationDate: Date) {
            self.serialNumber = Self.minimal(serialNumber)
            self.revocationDate = revocationDate
        }

        /// `bytes` without leading zero bytes (a DER INTEGER may carry one for the sign).
        static func minimal<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
            let trimmed = Array(bytes.drop(while: { $0 == 0 }))
            return trimmed.isEmpty ? [0] : trimmed
        }
    }

    /// The CA's subject.
    public var issuer: DistinguishedName
    /// When this list was made.
    public var thisUpdate: Date
    /// When the next list is due: after it, users of the list warn that it is stale (and go on using it).
    public var nextUpdate: Date
    /// The list's sequence number (cRLNumber), 1 for the first list.
    public var number: Int
    public var entries: [Entry]

    /// The largest CRL file read, in bytes: about 14 000 entries.
    public static let maxBytes = 1 << 20
    /// The CRL file name, in the CA folder and in a kit.
    public static let fileName = "crl.der"

    public init(issuer: DistinguishedName, thisUpdate: Date, nextUpdate: Date, number: Int, entries: [Entry]) {
        self.issuer = issuer
        self.thisUpdate = Self.wholeSeconds(thisUpdate)
        self.nextUpdate = Self.wholeSeconds(nextUpdate)
        self.number = number
        self.entries = entries.map {
            Entry(serialNumber: $0.serialNumber, revocationDate: Self.wholeSeconds($0.revocationDate))
        }
    }

    /// Whether the list names `certificate`'s serial number.
    public func isRevoked(_ certificate: Certificate) -> Bool {
        let serial = Entry.minimal(certificate.serialNumber.bytes)
        return entries.contains { $0.serialNumber == serial }
    }

    // MARK: - Encoding

    /// ecdsa-with-SHA256, RFC 5758 §3.2 (no parameters).
    static let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
    static let authorityKeyIdentifierOID: ASN1ObjectIdentifier = [2, 5, 29, 35]
    static let crlNumberOID: ASN1ObjectIdentifier = [2, 5, 29, 20]

    /// The DER bytes of the list, signed by `authority`.
    /// - Throws: `ProvisioningError.crypto` if encoding or signing fails.
    public func signed(by authority: CertificateAuthority) throws(ProvisioningError) -> [UInt8] {
        do {
            let keyIdentifier =
                try authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: authority.certificate.publicKey).keyIdentifier
            let keyExtension = try Certificate.Extension(
                AuthorityKeyIdentifier(keyIdentifier: keyIdentifier), critical: false)
            var tbs = DER.Serializer()
            try tbs.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(1)  // v2
                try Self.serializeAlgorithm(&coder)
                try coder.serialize(issuer)
                try Self.serializeTime(thisUpdate, &coder)
                try Self.serializeTime(nextUpdate, &coder)
                if !entries.isEmpty {
                    try coder.appendConstructedNode(identifier: .sequence) { list in
                        for entry in entries {
                            try list.appendConstructedNode(identifier: .sequence) { item in
                                try item.serialize(ArraySlice(entry.serialNumber))
                                try Self.serializeTime(entry.revocationDate, &item)
                            }
                        }
                    }
                }
                try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { tagged in
                    try tagged.appendConstructedNode(identifier: .sequence) { extensions in
                        try Self.serializeExtension(
                            Self.authorityKeyIdentifierOID, value: keyExtension.value, &extensions)
                        var number = DER.Serializer()
                        try number.serialize(self.number)
                        try Self.serializeExtension(Self.crlNumberOID, value: number.serializedBytes[...], &extensions)
                    }
                }
            }
            let tbsBytes = tbs.serializedBytes
            let signature = try authority.privateKey.signature(for: tbsBytes).derRepresentation
            var list = DER.Serializer()
            try list.appendConstructedNode(identifier: .sequence) { coder in
                coder.serializeRawBytes(tbsBytes)
                try Self.serializeAlgorithm(&coder)
                try coder.serialize(ASN1BitString(bytes: ArraySlice(signature)))
            }
            return list.serializedBytes
        } catch {
            throw ProvisioningError(.crypto, "could not sign the revocation list", cause: "\(error)")
        }
    }

    static func serializeAlgorithm(_ coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { try $0.serialize(ecdsaWithSHA256) }
    }

    static func serializeExtension(
        _ oid: ASN1ObjectIdentifier, value: ArraySlice<UInt8>, _ coder: inout DER.Serializer
    ) throws {
        try coder.appendConstructedNode(identifier: .sequence) { item in
            try item.serialize(oid)
            // critical DEFAULT FALSE: omitted (DER leaves out default values).
            try item.serialize(ASN1OctetString(contentBytes: value))
        }
    }

    /// UTCTime for years 1950-2049, GeneralizedTime otherwise (RFC 5280 §5.1.2.4).
    static func serializeTime(_ date: Date, _ coder: inout DER.Serializer) throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        guard let year = c.year, let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute,
            let second = c.second
        else {
            throw ProvisioningError(.crypto, "\(date) has no calendar date")
        }
        if (1950...2049).contains(year) {
            try coder.serialize(
                UTCTime(year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second))
        } else {
            try coder.serialize(
                GeneralizedTime(
                    year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second,
                    fractionalSeconds: 0))
        }
    }

    static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }

    // MARK: - Parsing

    /// Parses a DER CRL and checks it: issued (issuer name and ECDSA signature) by `authority`.
    /// - Parameters:
    ///   - bytes: the file's contents, at most `maxBytes`.
    ///   - authority: the project CA's certificate.
    ///   - path: the file name for messages.
    /// - Throws: `ProvisioningError.invalidKit` for bytes that are not such a CRL, `.untrustedCertificate` for a
    ///   list that another CA signed or whose signature does not verify.
    public init(derEncoded bytes: [UInt8], issuedBy authority: Certificate, path: String = fileName)
        throws(ProvisioningError)
    {
        guard bytes.count <= Self.maxBytes else {
            throw ProvisioningError(.invalidKit, "\(path) has \(bytes.count) bytes, more than \(Self.maxBytes)")
        }
        let parsed: (tbs: ArraySlice<UInt8>, list: CertificateRevocationList, signature: [UInt8])
        do {
            parsed = try DER.sequence(DER.parse(bytes), identifier: .sequence) { nodes in
                guard let tbsNode = nodes.next(), let algorithmNode = nodes.next(), let signatureNode = nodes.next()
                else {
                    throw ASN1Error.invalidASN1Object(reason: "a CertificateList has three parts")
                }
                let list = try Self.parseTBS(tbsNode)
                try Self.checkAlgorithm(algorithmNode)
                let signature = try ASN1BitString(derEncoded: signatureNode)
                return (tbsNode.encodedBytes, list, Array(signature.bytes))
            }
        } catch let error as ProvisioningError {
            throw error
        } catch {
            throw ProvisioningError(
                .invalidKit,
                "\(path) is not a DER certificate revocation list: copy ca/\(Self.fileName) again "
                    + "from the provisioning output", cause: "\(error)")
        }
        guard parsed.list.issuer == authority.subject else {
            throw ProvisioningError(
                .untrustedCertificate, "\(path) was issued by '\(parsed.list.issuer)', not this project's CA")
        }
        guard let key = P256.Signing.PublicKey(authority.publicKey),
            let signature = try? P256.Signing.ECDSASignature(derRepresentation: parsed.signature),
            key.isValidSignature(signature, for: parsed.tbs)
        else {
            throw ProvisioningError(
                .untrustedCertificate, "the signature of \(path) does not verify with the project CA's key")
        }
        self = parsed.list
    }

    static func parseTBS(_ node: ASN1Node) throws -> CertificateRevocationList {
        try DER.sequence(node, identifier: .sequence) { nodes in
            let version = try Int(derEncoded: &nodes)
            guard version == 1 else { throw ASN1Error.invalidASN1Object(reason: "version \(version), not v2 (1)") }
            guard let algorithm = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no signature") }
            try checkAlgorithm(algorithm)
            let issuer = try DistinguishedName(derEncoded: &nodes)
            guard let thisNode = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no thisUpdate") }
            let thisUpdate = try parseTime(thisNode)
            var nextUpdate = thisUpdate
            var entries: [Entry] = []
            var number = 0
            while let next = nodes.next() {
                if next.identifier == .utcTime || next.identifier == .generalizedTime {
                    nextUpdate = try parseTime(next)
                } else if next.identifier == .sequence {
                    entries = try DER.sequence(next, identifier: .sequence) { list in
                        var out: [Entry] = []
                        while let item = list.next() {
                            out.append(
                                try DER.sequence(item, identifier: .sequence) { fields in
                                    let serial = try ArraySlice<UInt8>(derEncoded: &fields)
                                    guard let dateNode = fields.next() else {
                                        throw ASN1Error.invalidASN1Object(reason: "an entry without revocationDate")
                                    }
                                    let date = try parseTime(dateNode)
                                    _ = fields.next()  // crlEntryExtensions: none are written, none are needed
                                    return Entry(serialNumber: Array(serial), revocationDate: date)
                                })
                        }
                        return out
                    }
                } else if next.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                    number = try parseNumber(next)
                } else {
                    throw ASN1Error.invalidASN1Object(reason: "unexpected field \(next.identifier)")
                }
            }
            return CertificateRevocationList(
                issuer: issuer, thisUpdate: thisUpdate, nextUpdate: nextUpdate, number: number, entries: entries)
        }
    }

    /// The cRLNumber in `[0] EXPLICIT Extensions` (0 when absent or out of `Int` range).
    static func parseNumber(_ node: ASN1Node) throws -> Int {
        guard case .constructed(let children) = node.content, let extensions = children.first(where: { _ in true })
        else { return 0 }
        return try DER.sequence(extensions, identifier: .sequence) { items in
            var number = 0
            while let item = items.next() {
                try DER.sequence(item, identifier: .sequence) { fields in
                    let oid = try ASN1ObjectIdentifier(derEncoded: &fields)
                    guard var valueNode = fields.next() else {
                        throw ASN1Error.invalidASN1Object(reason: "an extension without a value")
                    }
                    if valueNode.identifier == .boolean, let next = fields.next() {
                        valueNode = next  // the critical flag came first
                    }
                    let value = try ASN1OctetString(derEncoded: valueNode)
                    if oid == crlNumberOID { number = (try? Int(derEncoded: value.bytes)) ?? 0 }
                }
            }
            return number
        }
    }

    static func checkAlgorithm(_ node: ASN1Node) throws {
        let oid = try DER.sequence(node, identifier: .sequence) { fields in
            let oid = try ASN1ObjectIdentifier(derEncoded: &fields)
            while fields.next() != nil {}
            return oid
        }
        guard oid == ecdsaWithSHA256 else {
            throw ASN1Error.invalidASN1Object(reason: "signature algorithm \(oid), not ecdsa-with-SHA256")
        }
    }

    static func parseTime(_ node: ASN1Node) throws -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts: (Int, Int, Int, Int, Int, Int)
        if node.identifier == .utcTime {
            let t = try UTCTime(derEncoded: node)
            parts = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        } else {
            let t = try GeneralizedTime(derEncoded: node)
            parts = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        }
        let components = DateComponents(
            year: parts.0, month: parts.1, day: parts.2, hour: parts.3, minute: parts.4, second: parts.5)
        guard let date = calendar.date(from: components) else {
            throw ASN1Error.invalidASN1Object(reason: "time \(parts) is not a calendar date")
        }
        return date
    }
}
