/// The PEM files one participant needs for mutual TLS: its own certificate (chain) and private key, and the project
/// CA that every peer's certificate must chain to. These are the files of a startup kit (`tessera provision`).
public struct MutualTLSFiles: Sendable, Equatable {
    /// The participant's certificate, PEM; intermediates may follow the leaf.
    public var certificateChain: String
    /// The participant's private key, PEM (ECDSA P-256 from `tessera provision`).
    public var privateKey: String
    /// The project CA certificate, PEM: the only trust root (the system store is never used).
    public var trustRoots: String
    /// The project's certificate revocation list, DER (`crl.der` of the kit, from `tessera provision --revoke`), or
    /// nil. When set, every handshake checks the peer with `PeerCertificateVerifier`, which reads this file each time
    /// (a missing file revokes nothing); when nil, BoringSSL checks the chain and nothing is revoked.
    public var revocationList: String?

    public init(certificateChain: String, privateKey: String, trustRoots: String, revocationList: String? = nil) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
        self.revocationList = revocationList
    }
}
