// libFuzzer entry for what a site and the server parse of a secure-aggregation exchange
// (Sources/SecureAggregation): the stage messages (JSON), a peer's certificate (DER) checked against a CA, Shamir
// shares, and an unmask answer fed to the server's unmasking. Compiled as its own module against an instrumented
// SecureAggregation (see Fuzz/build.sh). Property: every input is accepted or refused with an error; nothing traps.
import Foundation
import SecureAggregation

/// A throw-away P-256 CA (openssl, 10 years), only to give the certificate check a root.
private let caPEM = """
    -----BEGIN CERTIFICATE-----
    MIIBsDCCAVegAwIBAgIUXswg4k0ktdzW8uLe+UtKO2u2vOEwCgYIKoZIzj0EAwIw
    LjENMAsGA1UECgwEZnV6ejELMAkGA1UECwwCY2ExEDAOBgNVBAMMB2Z1enotY2Ew
    HhcNMjYxMjA3MDQ1NDU1WhcNMzYxMjA0MDQ1NDU1WjAuMQ0wCwYDVQQKDARmdXp6
    MQswCQYDVQQLDAJjYTEQMA4GA1UEAwwHZnV6ei1jYTBZMBMGByqGSM49AgEGCCqG
    SM49AwEHA0IABOSLgb9LUJanWBJ2qYo6/d3Qr8H5fNiwDmFZPYU3xqVZ/F0bvAdC
    FMKU9fOQrs2c9nHwI3lsiJOrvXXGpcKAMpajUzBRMB0GA1UdDgQWBBQg5WtM9GXa
    mqgAFcOAOGtNJCOA5DAfBgNVHSMEGDAWgBQg5WtM9GXamqgAFcOAOGtNJCOA5DAP
    BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIEoP2ubW7u+ww9B+bsSU
    Msvs6fDRZNIPk2y42dwQTOoBAiB3bt0E8jI0nGdbrHerQv9Bg+8qz7MHGXOHut74
    BtuUyA==
    -----END CERTIFICATE-----
    """

private let verifier = try? PeerVerifier(caCertificatePEM: caPEM)

@_cdecl("LLVMFuzzerTestOneInput")
public func secaggMessagesFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let body = Array(bytes.dropFirst())
    switch bytes[0] % 6 {
    case 0: _ = try? SecAggMessage.decode(SecAggMessage.ShareRequest.self, from: body)
    case 1: _ = try? SecAggMessage.decode(SecAggMessage.MaskRequest.self, from: body)
    case 2:
        _ = try? SecAggMessage.decode(SecAggMessage.UnmaskRequest.self, from: body)
        _ = try? SecAggMessage.decode(SecAggMessage.UnmaskResponse.self, from: body)
    case 3: _ = try? verifier?.key(of: body, for: "site")
    case 4:
        // Shares: x, then 8 bytes each.
        var shares: [Shamir.Share] = []
        var i = 0
        while i + 9 <= body.count {
            shares.append(Shamir.Share(x: body[i], y: Array(body[(i + 1)..<(i + 9)])))
            i += 9
        }
        _ = try? Shamir.combine(shares)
    default:
        if let parameters = try? SecAggMessage.decode(SecAggParameters.self, from: body) {
            _ = try? parameters.validate()
            _ = try? NeighbourGraph(participants: ["a", "b", "c", "d"], parameters: parameters)
        }
    }
    return 0
}
