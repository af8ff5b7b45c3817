import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// Writes Tessera-initialised checkpoints of the full-size reference models, with an input and Tessera's logits, to
/// `$TESSERA_INTEROP_DIR` (default `/tmp/tessera-interop`). `scripts/reference/torch_golden.py --check DIR` then
/// loads them into the PyTorch modules with `load_state_dict(strict=True)` and compares logits; its output is
/// committed as Golden/interop.txt. The reverse direction (PyTorch's weights into Tessera) is `GoldenTests`.
@Suite("Interoperability checkpoints for PyTorch", .computeBound)
struct InteropTests {
    @Test("Write unet2d, unet3d and cls2d checkpoints and logits; they read back identically")
    func writeCheckpoints() throws {
        let folder = ProcessInfo.processInfo.environment["TESSERA_INTEROP_DIR"] ?? "/tmp/tessera-interop"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 2026)
        let cases: [(String, any Module, [Int])] = [
            ("unet2d", UNet.unet2d(generator: &g), [1, 1, 32, 32]),
            ("unet3d", UNet.unet3d(generator: &g), [1, 1, 16, 16, 16]),
            ("cls2d", SmallCNN(generator: &g), [2, 1, 32, 32]),
        ]
        for (name, model, shape) in cases {
            let input = Tensor.randomNormal(shape, generator: &g)
            let logits: Tensor
            switch model {
            case let m as UNet: logits = try m.forward(input).output
            case let m as SmallCNN: logits = try m.forward(input).output
            default:
                Issue.record("unexpected model")
                continue
            }
            let path = "\(folder)/\(name).safetensors"
            try SafeTensors.write(model.stateDict, metadata: ["format": "pt", "producer": "tessera"], to: path)
            try SafeTensors.write(
                NamedTensors([("input", input), ("logits", logits)]), to: "\(folder)/\(name)_io.safetensors")
            let back = try SafeTensors.read(contentsOf: path)
            #expect(back.tensors == NamedTensors(model.stateDict.names.sorted().map { ($0, model.stateDict[$0]!) }))
            #expect(back.metadata["producer"] == "tessera")
        }
    }
}
