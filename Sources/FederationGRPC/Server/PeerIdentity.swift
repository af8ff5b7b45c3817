import FederationCore
import GRPCCore
import GRPCNIOTransportHTTP2
import Provisioning
import X509

/// Who is at the other end of a verified mutual-TLS connection, read from the client certificate's subject.
///
/// Identity is the single `CN` (commonName, OID 2.5.4.3); the role is the single `OU` (organizationalUnitName,
/// 2.5.4.11): `site`, `admin` or `server`, as `tessera provision` writes them. Only a `site` certificate may act as a
/// site; the handshake has already checked that the certificate chains to the project CA (and that it is not revoked,
/// `PeerCertificateVerifier`). A site admin's certificate also names its site (`Participant.siteURIPrefix`).
struct PeerIdentity: Sendable, Equatable {
    /// The role a certificate must carry to act as a site.
    static let siteRole = "site"

    var commonName: String
    var role: String
    /// The site a site admin's certificate names (subjectAltName URI `urn:tessera:site:<name>`), if any.
    var site: String?

    /// - Throws: `.unknownSite` when the connection carries no certificate (only possible if TLS were off) or the
    ///   subject lacks a single CN or OU.
    init(_ context: ServerContext) throws(FederationError) {
        guard let tls = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = tls.peerCertificate
        else {
            throw FederationError(.unknownSite, "the connection carries no verified client certificate")
        }
        try self.init(subject: certificate.subject)
        site = Participant.site(of: certificate)
    }

    init(subject: DistinguishedName) throws(FederationError) {
        var names: [String] = []
        var roles: [String] = []
        for rdn in subject {
            for attribute in rdn {
                if attribute.type == .RDNAttributeType.commonName, let s = String(attribute.value) { names.append(s) }
                if attribute.type == .RDNAttributeType.organizationalUnitName, let s = String(attribute.value) {
                    roles.append(s)
                }
            }
        }
        guard names.count == 1, let name = names.first, !name.isEmpty else {
            throw FederationError(
                .unknownSite,
                "the client certificate's subject (\(subject)) needs exactly one CN, "
                    + "the site name")
        }
        guard roles.count == 1, let role = roles.first else {
            throw FederationError(.unknownSite, "the client certificate of '\(name)' needs exactly one OU, its role")
        }
        commonName = name
        self.role = role
    }

    /// The site this peer may speak for: its CN, provided the certificate's role is `site` and `claimed` (the site
    /// named in the request) is that CN.
    /// - Throws: `.unknownSite` (PERMISSION_DENIED on the wire) otherwise.
    func authorize(site claimed: String) throws(FederationError) -> String {
        guard role == Self.siteRole else {
            throw FederationError(
                .unknownSite,
                "certificate '\(commonName)' has role '\(role)', "
                    + "not '\(Self.siteRole)': it may not act as a site")
        }
        guard claimed == commonName else {
            throw FederationError(.unknownSite, "certificate '\(commonName)' may not speak for site '\(claimed)'")
        }
        return commonName
    }

    /// The caller of the admin API this peer is (whether its role may do anything is `AdminPolicy`'s to say).
    var adminCaller: AdminCaller { AdminCaller(name: commonName, roleName: role, site: site) }
}
