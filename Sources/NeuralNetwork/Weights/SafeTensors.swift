import Foundation
import SafeTensorsFormat
import Tensors

/// safetensors files of named tensors (checkpoints with PyTorch `state_dict` names), on top of the shared format
/// module `SafeTensorsFormat` (8-byte little-endian header length, JSON header with dtype/shape/data_offsets and
/// `__metadata__`, float32 data).
public enum SafeTensors {
    /// The tensors and the `__metadata__` string map of a file.
    public struct Contents: Sendable {
        public var tensors: NamedTensors
        public var metadata: [String: String]
    }

    /// Reads a safetensors file.
    /// - Throws: `NeuralNetworkError` `.io`, `.invalidHeader` or `.unsupportedDType`, naming the tensor at fault.
    public static func read(contentsOf path: String) throws -> Contents {
        do { return convert(try SafeTensorsFile.read(contentsOf: path)) } catch { throw map(error) }
    }

    /// Decodes safetensors bytes.
    public static func decode(_ data: Data) throws -> Contents {
        do { return convert(try SafeTensorsFile.decode(data)) } catch { throw map(error) }
    }

    /// Encodes tensors (in name order) and metadata as safetensors bytes (header padded to 8 bytes).
    public static func encode(_ tensors: NamedTensors, metadata: [String: String] = [:]) -> Data {
        SafeTensorsFile.encode(entries(tensors), metadata: metadata)
    }

    /// Writes a safetensors file atomically.
    /// - Throws: `NeuralNetworkError.io`.
    public static func write(_ tensors: NamedTensors, metadata: [String: String] = [:], to path: String) throws {
        do { try SafeTensorsFile.write(entries(tensors), metadata: metadata, to: path) } catch { throw map(error) }
    }

    static func entries(_ tensors: NamedTensors) -> [SafeTensorEntry] {
        tensors.map { SafeTensorEntry(name: $0.name, shape: $0.tensor.shape, values: $0.tensor.storage) }
    }

    static func convert(_ contents: SafeTensorsFile.Contents) -> Contents {
        var tensors = NamedTensors()
        for e in contents.entries { tensors[e.name] = Tensor(shape: e.shape, storage: e.values) }
        return Contents(tensors: tensors, metadata: contents.metadata)
    }

    static func map(_ error: SafeTensorsError) -> NeuralNetworkError {
        let code: NeuralNetworkError.Code
        switch error.code {
        case .invalidHeader: code = .invalidHeader
        case .unsupportedDType: code = .unsupportedDType
        case .io: code = .io
        }
        return NeuralNetworkError(code, error.message, cause: error.cause)
    }
}
