#!/usr/bin/env bash
# Reference reading of Tessera's certificate revocation list by OpenSSL (an independent X.509 implementation).
#
# Provenance: Tests/ProvisioningTests/Golden/crl/crl.der was written by Tessera's own encoder
# (`CertificateRevocationList.signed(by:)`, RFC 5280 §5) from the fixed list in RevocationListTests.swift (`GoldenCRL`)
# and the throw-away test CA next to it (regenerate both with
# `TESSERA_WRITE_GOLDEN_CRL=1 .build/debug/TesseraPackageTests.xctest --testing-library swift-testing --filter golden`,
# then run this script). This script asks OpenSSL to parse the CRL, print every field and verify its signature with
# the CA; the output is committed as crl.openssl.txt and the Swift test checks that OpenSSL read the same version,
# issuer, dates, extensions and serial numbers, and "verify OK".
#
# Usage: scripts/reference/crl_openssl.sh [GOLDEN_FOLDER]   (default Tests/ProvisioningTests/Golden/crl)
set -euo pipefail
cd "$(dirname "$0")/../.."
FOLDER="${1:-Tests/ProvisioningTests/Golden/crl}"
command -v openssl >/dev/null || { echo "openssl not found: apt-get install -y openssl" >&2; exit 1; }
{
    echo "# openssl crl -inform DER -in crl.der -noout -text -CAfile ca.pem"
    echo "# $(openssl version)"
    openssl crl -inform DER -in "$FOLDER/crl.der" -noout -text -CAfile "$FOLDER/ca.pem" 2>&1
} > "$FOLDER/crl.openssl.txt"
echo "wrote $FOLDER/crl.openssl.txt"
