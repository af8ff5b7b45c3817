// libFuzzer entry for the safetensors reader, compiled into the SafeTensorsFormat module (see Fuzz/build.sh).
// Property: decode never traps; whatever it accepts re-encodes and decodes to the same tensors and metadata.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func safeTensorsFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let data = Data(bytes: start, count: count)
    guard let contents = try? SafeTensorsFile.decode(data) else { return 0 }
    let again = SafeTensorsFile.encode(contents.entries, metadata: contents.metadata)
    guard let back = try? SafeTensorsFile.decode(again),
        back.metadata == contents.metadata,
        back.entries.map(\.name) == contents.entries.map(\.name),
        back.entries.map(\.shape) == contents.entries.map(\.shape),
        back.entries.map({ $0.values.map(\.bitPattern) }) == contents.entries.map({ $0.values.map(\.bitPattern) })
    else {
        preconditionFailure("safetensors round trip changed the accepted file")
    }
    return 0
}
