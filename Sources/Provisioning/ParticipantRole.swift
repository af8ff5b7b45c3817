/// What a participant may do in the federation, as carried in its certificate.
///
/// The role is the value of the single `OU` (organizationalUnitName, OID 2.5.4.11) attribute of the certificate's
/// subject, spelled exactly as `rawValue` (`server`, `site`, `admin`, `member`, `site-admin`); the participant's
/// identity is the subject's single `CN` (commonName, 2.5.4.3). The transport reads both from the peer certificate
/// after the mutual-TLS handshake has verified it against the project CA. The three administrator roles match
/// FederationCore's `AdminRole`, whose `AdminPolicy` says what each may do.
public enum ParticipantRole: String, Sendable, Hashable, CaseIterable, Codable {
    /// The aggregation server: the only role with a server-authentication certificate.
    case server
    /// A data-holding site (hospital) that runs the client.
    case site
    /// The project lead: submits and manages every job (every admin kit issued before roles existed).
    case admin
    /// A consortium member: submits jobs and reads all; aborts only its own jobs.
    case member
    /// A hospital's IT: read-only, on its own site only (the certificate names the site).
    case siteAdmin = "site-admin"

    /// The roles that use the admin API (`tessera admin`).
    public static let administrators: Set<ParticipantRole> = [.admin, .member, .siteAdmin]

    /// The extended key usage a certificate of this role carries (RFC 5280 §4.2.1.12).
    public var extendedKeyUsage: ExtendedKeyUsagePurpose {
        self == .server ? .serverAuth : .clientAuth
    }
}

/// The TLS purpose of a leaf certificate.
public enum ExtendedKeyUsagePurpose: String, Sendable, Hashable {
    /// id-kp-serverAuth, 1.3.6.1.5.5.7.3.1.
    case serverAuth
    /// id-kp-clientAuth, 1.3.6.1.5.5.7.3.2.
    case clientAuth
}
