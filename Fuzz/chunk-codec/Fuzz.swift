import Foundation

// libFuzzer entry for the gRPC wire decoders (Sources/FederationGRPC/Wire): the first byte picks a decoder, the
// rest is one message as it arrives from a peer. Compiled as its own module against an instrumented
// FederationGRPC (see Fuzz/build.sh). Properties: no decoder traps; a chunk that decodes re-encodes to bytes
// that decode to the same fields; the assembler, and the receiver applying a chunk as a change to a held model,
// accept or reject every decoded chunk without trapping.
@testable import FederationCore
@testable import FederationGRPC

@_cdecl("LLVMFuzzerTestOneInput")
public func chunkCodecFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let selector = start[0]
    let message = Array(UnsafeBufferPointer(start: start + 1, count: count - 1))
    switch selector % 4 {
    case 0: downloadedChunk(message)
    case 1: uploadedPart(message)
    case 2: generatedChunk(message)
    default: generatedTask(message)
    }
    return 0
}

/// DownloadModel's response, site side: parse in place, assemble, and re-encode.
private func downloadedChunk(_ message: [UInt8]) {
    guard let received = try? ReceivedChunkDeserializer().deserialize(message) else { return }
    var assembler = ParameterAssembler()
    if (try? assembler.append(received: received)) != nil { _ = try? assembler.finish() }
    // As a change to a held model of one small tensor (or one of the chunk's own shape when that is small).
    let count = received.shape.count == 1 && received.shape[0] <= 1 << 16 ? received.shape[0] : 8
    let held = ParameterSet([
        ParameterTensor(name: received.tensor, shape: [count], values: [Float](repeating: 0.5, count: count))
    ])
    var receiver = ModelReceiver(holding: HeldModel(parameters: held, digest: ModelDigest(of: held)))
    let claimed = ModelDigest(value: 1)  // a change must name what it builds; the finish then refuses the mismatch
    if (try? receiver.begin(base: ModelDigest(of: held), digest: claimed)) != nil,
        (try? receiver.append(received.chunk)) != nil
    {
        _ = try? receiver.finish()
    }
    let chunk = received.parameterChunk()
    guard let bytes: [UInt8] = try? ChunkSerializer().serialize(chunk),
        let again = try? ReceivedChunkDeserializer().deserialize(bytes)
    else { preconditionFailure("a decoded chunk does not re-encode") }
    let back = again.parameterChunk()
    precondition(
        back.tensor == chunk.tensor && back.shape == chunk.shape && back.offset == chunk.offset
            && back.values.map(\.bitPattern) == chunk.values.map(\.bitPattern) && back.encoded == chunk.encoded,
        "chunk round trip changed its fields")
}

/// UploadResult's request, server side: a header or a chunk.
private func uploadedPart(_ message: [UInt8]) {
    guard let part = try? IncomingPartDeserializer().deserialize(message) else { return }
    switch part {
    case .header(let header): _ = header.wire
    case .chunk(let chunk):
        var assembler = ParameterAssembler()
        if (try? assembler.append(chunk)) != nil { _ = try? assembler.finish() }
        _ = try? OutgoingPartSerializer().serialize(.chunk(chunk)) as [UInt8]
    case .refused(let error): _ = error.message  // an encoded chunk whose sizes or scales do not check out
    }
}

/// A chunk through the generated message and WireConversion (the path of every transport but NIO's).
private func generatedChunk(_ message: [UInt8]) {
    guard let wire = try? WireChunk(serializedBytes: message) else { return }
    var assembler = ParameterAssembler()
    if (try? assembler.append(wire: wire)) != nil { _ = try? assembler.finish() }
    if let chunk = try? ParameterChunk(wire: wire) { _ = chunk.wire }
}

/// A task assignment through the generated message and WireConversion.
private func generatedTask(_ message: [UInt8]) {
    guard let wire = try? WireTask(serializedBytes: message) else { return }
    if let task = try? TaskAssignment(wire: wire) { _ = task.wire }
}
