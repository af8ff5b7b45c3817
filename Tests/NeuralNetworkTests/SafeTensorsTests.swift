import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

@Suite("safetensors", .computeBound)
struct SafeTensorsTests {
    let tensors = NamedTensors([
        ("b.weight", Tensor(shape: [2, 3], storage: [1, 2, 3, 4, 5, -6.5])),
        ("a.bias", Tensor(shape: [3], storage: [0.25, .infinity, -0])),
        ("scalar", Tensor(shape: [], storage: [7])),
    ])

    /// A file from a hand-written header and data buffer.
    func file(_ header: String, data: [UInt8] = Array(repeating: 0, count: 8)) -> Data {
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(header.utf8))
        d.append(contentsOf: data)
        return d
    }

    func expectError(
        _ data: Data, _ code: NeuralNetworkError.Code, mentioning text: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try SafeTensors.decode(data)
            Issue.record("accepted a bad file", sourceLocation: sourceLocation)
        } catch let e as NeuralNetworkError {
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
            #expect(e.message.contains(text), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("Round trip: values, shapes, metadata; header 8-byte aligned; names sorted")
    func roundTrip() throws {
        let data = SafeTensors.encode(tensors, metadata: ["format": "pt", "note": "quote \" and \\"])
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0)
        let back = try SafeTensors.decode(data)
        #expect(back.metadata == ["format": "pt", "note": "quote \" and \\"])
        #expect(back.tensors.names == ["a.bias", "b.weight", "scalar"])
        for (name, t) in tensors {
            #expect(back.tensors[name]!.shape == t.shape)
            #expect(back.tensors[name]!.storage.map(\.bitPattern) == t.storage.map(\.bitPattern))
        }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try SafeTensors.write(tensors, to: folder + "/w.safetensors")
        #expect(try SafeTensors.read(contentsOf: folder + "/w.safetensors").tensors["b.weight"] == tensors["b.weight"])
    }

    @Test("Bad headers are rejected with the reason")
    func badHeaders() {
        expectError(Data([1, 2, 3]), .invalidHeader, mentioning: "too short")
        var huge = Data()
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge.append(contentsOf: $0) }
        expectError(huge, .invalidHeader, mentioning: "exceeds")
        expectError(file("{not json"), .invalidHeader, mentioning: "not valid JSON")
        expectError(file("[1, 2]"), .invalidHeader, mentioning: "not a JSON object")
        expectError(file(#"{"x":{"dtype":"F32","shape":[2]}}"#), .invalidHeader, mentioning: "'x'")
        expectError(
            file(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#), .invalidHeader,
            mentioning: "'x'")
        expectError(
            file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 12)),
            .invalidHeader, mentioning: "no tensor covers")
        expectError(
            file(
                #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
            ),
            .invalidHeader, mentioning: "overlap")
        expectError(
            file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"a":1}}"#),
            .invalidHeader, mentioning: "__metadata__")
        expectError(
            file(#"{"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#), .invalidHeader,
            mentioning: "integers")
    }

    /// Headers whose values once trapped or would be out of bounds: each is an error naming the tensor and the
    /// limit (issue #11; the fuzz target Fuzz/safetensors keeps looking for more).
    @Test(
        "Hostile header values are rejected, naming the tensor and the limit",
        arguments: [
            // Shape product 8e18 fits in Int, × 4 bytes did not: this trapped.
            (#"{"w":{"dtype":"F32","shape":[8000000000000000,1000],"data_offsets":[0,0]}}"#, "'w': shape"),
            (#"{"w":{"dtype":"F32","shape":[3000000000000000,3000000000000000],"data_offsets":[0,0]}}"#, "2^53 bytes"),
            (#"{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}"#, "below 2^53"),
            (#"{"w":{"dtype":"F32","shape":[1e300],"data_offsets":[0,8]}}"#, "'w': shape must hold integers"),
            (#"{"w":{"dtype":"F32","shape":[true,2],"data_offsets":[0,8]}}"#, "'w': shape must hold integers"),
            (#"{"w":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}}"#, "negative dimension -2"),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, "8-byte data buffer"),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, "'w': data_offsets [-8, 0]"),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, "'w': data_offsets [8, 0]"),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#, "found 3 values"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, "needs 4"),
            (#"{"w":{"dtype":"float32","shape":[2],"data_offsets":[0,8]}}"#, "unknown dtype 'float32'"),
        ])
    func hostileHeaderValues(header: String, text: String) {
        expectError(file(header), .invalidHeader, mentioning: text)
    }

    @Test("The header length is bounded before anything is allocated")
    func headerLengthLimit() {
        var d = Data()
        withUnsafeBytes(of: UInt64.max.littleEndian) { d.append(contentsOf: $0) }
        expectError(d, .invalidHeader, mentioning: "limit of 100000000 bytes")
        d = Data()
        withUnsafeBytes(of: UInt64(64).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array("{}".utf8))
        expectError(d, .invalidHeader, mentioning: "exceeds the file size (10 bytes)")
    }

    @Test("A tensor of another dtype is rejected, naming it")
    func wrongDType() {
        expectError(
            file(#"{"enc.0.c1.weight":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#), .unsupportedDType,
            mentioning: "'enc.0.c1.weight' has dtype F64")
    }

    @Test("Loading into a model: missing, extra and mis-shaped tensors are named")
    func strictLoad() throws {
        var g = SeededGenerator(seed: 1)
        var model = SmallCNN(generator: &g)
        var state = model.stateDict
        try model.load(SafeTensors.decode(SafeTensors.encode(state)).tensors)
        state["c3.bias"] = nil
        #expect { try model.load(state) } throws: { e in
            (e as? NeuralNetworkError)?.code == .missingTensor && "\(e)".contains("'c3.bias'")
        }
        state = model.stateDict
        state["c5.weight"] = Tensor(zeros: [1])
        #expect { try model.load(state) } throws: { e in
            (e as? NeuralNetworkError)?.code == .unexpectedTensor && "\(e)".contains("'c5.weight'")
        }
        state = model.stateDict
        state["fc.weight"] = Tensor(zeros: [3, 128])
        #expect { try model.load(state) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("'fc.weight'")
                && "\(e)".contains("[2, 128]")
        }
    }

    @Test("An unreadable path is an I/O error naming the file")
    func missingFile() {
        #expect { try SafeTensors.read(contentsOf: "/nonexistent/w.safetensors") } throws: { e in
            (e as? NeuralNetworkError)?.code == .io && "\(e)".contains("/nonexistent/w.safetensors")
        }
    }
}
