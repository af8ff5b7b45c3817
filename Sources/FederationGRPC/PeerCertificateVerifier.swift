import Foundation
import NIOCore
import NIOSSL
import Provisioning
import X509

/// Checks the peer's certificate during the TLS handshake, in place of BoringSSL's own check, when the participant
/// has a certificate revocation list (`MutualTLSFiles.revocationList`): the chain must verify against the project CA
/// (RFC 5280 path validation by swift-certificates: signature, validity now, basic constraints, key usage), a server
/// certificate must name the host dialled, and the leaf must not be on the CRL.
///
/// The CA and the CRL are read again at each handshake (both are a few hundred bytes; connections are long-lived),
/// so a new `crl.der` copied into the kit takes effect at the next connection without a restart. A missing CRL file
/// revokes nothing; a CRL that cannot be read or is not signed by the project CA refuses every peer (fail closed)
/// until it is replaced, and says so in the log. A CRL past its nextUpdate is still used, with a warning.
struct PeerCertificateVerifier: Sendable {
    /// The project CA certificate, PEM.
    let trustRootsPath: String
    /// The CRL, DER (`tessera provision --revoke`).
    let revocationListPath: String
    /// The server's host name (client side); nil on the server side, whose clients have no host names.
    let serverHostname: String?
    let log: (@Sendable (String) -> Void)?

    /// The callback for `customVerificationCallback`: completes `promise` once the chain is judged.
    func callback(
        _ certificates: [NIOSSLCertificate], _ promise: EventLoopPromise<NIOSSLVerificationResultWithMetadata>
    ) {
        let chain: [[UInt8]]
        do {
            chain = try certificates.map { try $0.toDERBytes() }
        } catch {
            log?("TLS: refused a peer: its certificate cannot be encoded (\(error))")
            promise.succeed(.failed)
            return
        }
        Task {
            if let reason = await refusal(chain) {
                log?("TLS: refused a peer: \(reason)")
                promise.succeed(.failed)
            } else {
                promise.succeed(.certificateVerified(VerificationMetadata(nil)))
            }
        }
    }

    /// Why the chain (DER, leaf first) is refused at `now`, or nil when it is accepted.
    func refusal(_ chain: [[UInt8]], now: Date = Date()) async -> String? {
        let ca: Certificate
        do {
            ca = try Certificate(pemEncoded: String(contentsOfFile: trustRootsPath, encoding: .utf8))
        } catch {
            return "the project CA \(trustRootsPath) cannot be read (\(error))"
        }
        guard let leafBytes = chain.first, let leaf = try? Certificate(derEncoded: leafBytes) else {
            return "the peer sent no readable certificate"
        }
        let intermediates = chain.dropFirst().compactMap { try? Certificate(derEncoded: $0) }
        let hostname = serverHostname
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
            RFC5280Policy(validationTime: now)
            if let hostname {
                let address = ServerAddress(host: hostname, port: 1)
                if address.ipv4Bytes != nil || address.ipv6Bytes != nil {
                    ServerIdentityPolicy(serverHostname: nil, serverIP: hostname)
                } else {
                    ServerIdentityPolicy(serverHostname: hostname, serverIP: nil)
                }
            }
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
        if case .couldNotValidate(let failures) = result {
            let reasons = failures.map { "\($0.policyFailureReason)" }.joined(separator: "; ")
            return "certificate '\(leaf.subject)' does not verify against the project CA: \(reasons)"
        }
        guard FileManager.default.fileExists(atPath: revocationListPath) else { return nil }
        let list: CertificateRevocationList
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: revocationListPath)
            let size = (attributes[.size] as? NSNumber)?.intValue ?? Int.max
            guard size <= CertificateRevocationList.maxBytes else {
                return "the revocation list \(revocationListPath) has \(size) bytes, more than "
                    + "\(CertificateRevocationList.maxBytes): every peer is refused until it is replaced"
            }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: revocationListPath))
            list = try CertificateRevocationList(derEncoded: Array(bytes), issuedBy: ca, path: revocationListPath)
        } catch {
            return "the revocation list cannot be used (\(error)): every peer is refused until "
                + "\(revocationListPath) is replaced by the CA's ca/\(CertificateRevocationList.fileName)"
        }
        if now > list.nextUpdate {
            log?(
                "TLS: the revocation list \(revocationListPath) (number \(list.number)) was due for renewal on "
                    + "\(list.nextUpdate): still used; copy a newer ca/\(CertificateRevocationList.fileName)")
        }
        if list.isRevoked(leaf) {
            return "certificate '\(leaf.subject)' (serial \(leaf.serialNumber)) is revoked "
                + "(\(revocationListPath), number \(list.number))"
        }
        return nil
    }
}
