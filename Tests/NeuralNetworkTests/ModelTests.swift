import NeuralNetwork
import Tensors
import TestSupport
import Testing

@Suite("Models and schedules", .computeBound)
struct ModelTests {
    @Test("Parameter counts equal PyTorch's (unet2d 1 940 834, unet3d 350 466, cls2d 97 410)")
    func parameterCounts() {
        var g = SeededGenerator(seed: 0)
        #expect(UNet.unet2d(generator: &g).parameters.elementCount == 1_940_834)
        #expect(UNet.unet3d(generator: &g).parameters.elementCount == 350_466)
        #expect(SmallCNN(generator: &g).parameters.elementCount == 97_410)
    }

    @Test("Inputs that do not fit are reported, not trapped")
    func badInputs() throws {
        var g = SeededGenerator(seed: 0)
        let unet = UNet(dimensions: 2, encoderChannels: [2, 4], bottleneckChannels: 8, classes: 2, generator: &g)
        #expect { try unet.forward(Tensor(zeros: [1, 1, 12, 10])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("multiples of 4")
        }
        #expect { try unet.forward(Tensor(zeros: [1, 3, 8, 8])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("[batch, 1, height, width]")
        }
        #expect { try unet.forward(Tensor(zeros: [1, 1, 8, 8, 8])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch
        }
        #expect(try unet.forward(Tensor(zeros: [2, 1, 8, 12])).output.shape == [2, 2, 8, 12])
        let cnn = SmallCNN(generator: &g)
        #expect { try cnn.forward(Tensor(zeros: [1, 1, 4, 16])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("height ≥ 8")
        }
    }

    @Test("Learning-rate schedules: step and cosine as PyTorch's StepLR and CosineAnnealingLR")
    func schedules() {
        #expect(LearningRateSchedule.constant.rate(base: 0.1, at: 99) == 0.1)
        let step = LearningRateSchedule.step(size: 10, gamma: 0.5)
        #expect(step.rate(base: 0.1, at: 9) == 0.1)
        #expect(abs(step.rate(base: 0.1, at: 10) - 0.05) < 1e-8)
        #expect(abs(step.rate(base: 0.1, at: 25) - 0.025) < 1e-8)
        let cosine = LearningRateSchedule.cosine(period: 100, minimum: 0.001)
        #expect(abs(cosine.rate(base: 0.1, at: 0) - 0.1) < 1e-7)
        #expect(abs(cosine.rate(base: 0.1, at: 50) - 0.0505) < 1e-6)
        #expect(abs(cosine.rate(base: 0.1, at: 100) - 0.001) < 1e-7)
        #expect(abs(cosine.rate(base: 0.1, at: 150) - 0.001) < 1e-7)
    }
}
