#!/usr/bin/env bash
# Regenerates Sources/FederationGRPC/Generated/ and Sources/ExperimentTracking/Generated/ from Protos/. Run after
# editing a .proto and commit the output: the build never runs protoc or its plugins.
#
# Needs Debian's protoc (apt-get install -y protobuf-compiler) and the two plugins, built from the package's
# dependencies into the scratch folder given as $SCRATCH (default .build-protoc).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH="${SCRATCH:-.build-protoc}"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
swift build --scratch-path "$SCRATCH" --product protoc-gen-swift
swift build --scratch-path "$SCRATCH" --product protoc-gen-grpc-swift-2
BIN="$(swift build --scratch-path "$SCRATCH" --show-bin-path)"
OUT=Sources/FederationGRPC/Generated
mkdir -p "$OUT"
rm -f "$OUT"/*.pb.swift "$OUT"/*.grpc.swift
protoc \
    --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$BIN/protoc-gen-grpc-swift-2" \
    --proto_path=Protos \
    --swift_out="$OUT" --swift_opt=Visibility=Internal,FileNaming=DropPath \
    --grpc-swift_out="$OUT" --grpc-swift_opt=Visibility=Internal,FileNaming=DropPath,Server=true,Client=true \
    Protos/tessera/federation/v1/federation.proto
echo "generated: $(ls "$OUT")"
# TensorBoard's event records (the subset Tessera writes), for ExperimentTracking.
TB_OUT=Sources/ExperimentTracking/Generated
mkdir -p "$TB_OUT"
rm -f "$TB_OUT"/*.pb.swift
protoc \
    --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
    --proto_path=Protos \
    --swift_out="$TB_OUT" --swift_opt=Visibility=Internal,FileNaming=DropPath \
    Protos/tensorboard/event.proto
echo "generated: $(ls "$TB_OUT")"
