/// What a participant may do in the federation, as carried in its certificate.
///
/// The role is the value of the single `OU` (organizationalUnitName, OID 2.5.4.11) attribute of the certificate's
/// subject, spelled exactly as `rawValue` (`server`, `site`, `admin`); the participant's identity is the subject's
/// single `CN` (commonName, 2.5.4.3). The transport reads both from the peer certificate after the mutual-TLS
/// handshake has verified it against the project CA.
public enum ParticipantRole: String, Sendable, Hashable, CaseIterable, Codable {
    /// The aggregation server: the only role with a server-authentication certificate.
    case server
    /// A data-holding site (hospital) that runs the client.
    case site
    /// A person who submits and manages jobs.
    case admin

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
