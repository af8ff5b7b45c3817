/// Server-side optimisers of FedOpt (Reddi et al., *Adaptive Federated Optimization*, ICLR 2021, Algorithm 2).
/// The aggregated client update Δ (the weighted mean of weight diffs) is treated as a pseudo-gradient step:
///
/// - FedAvg:  x ← x + η·Δ                                   (η = 1 is plain FedAvg)
/// - FedAvgM: m ← β·m + Δ;  x ← x + η·m                      (Hsu et al. 2019)
/// - FedAdam: m ← β₁m + (1−β₁)Δ;  v ← β₂v + (1−β₂)Δ²;  x ← x + η·m / (√v + τ)
/// - FedYogi: m as Adam;  v ← v − (1−β₂)·Δ²·sign(v − Δ²);  x ← x + η·m / (√v + τ)
///
/// State (m, v) lives with the server's job and is checkpointed with the model.
public struct ServerOptimizer: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case fedAvg = "fedavg", fedAvgM = "fedavgm", fedAdam = "fedadam", fedYogi = "fedyogi" }

    public var kind: Kind
    /// Server learning rate η.
    public var learningRate: Float
    /// β (FedAvgM) or β₁.
    public var beta1: Float
    public var beta2: Float
    /// τ: adaptivity (keeps the step finite where v ≈ 0).
    public var tau: Float
    public private(set) var momentum: ParameterSet?
    public private(set) var secondMoment: ParameterSet?

    public init(kind: Kind, learningRate: Float = 1, beta1: Float = 0.9, beta2: Float = 0.99, tau: Float = 1e-3) {
        self.kind = kind
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau
    }

    /// Applies one server step with the aggregated update `delta` and returns the new global model.
    public mutating func step(global: ParameterSet, delta: ParameterSet) throws(FederationError) -> ParameterSet {
        try delta.checkStructure(matches: global)
        switch kind {
        case .fedAvg:
            return try global.adding(delta, scaledBy: learningRate)
        case .fedAvgM:
            let m = try (momentum ?? delta.zeros()).scaled(beta1).adding(delta)
            momentum = m
            return try global.adding(m, scaledBy: learningRate)
        case .fedAdam, .fedYogi:
            let m = try (momentum ?? delta.zeros()).scaled(beta1).adding(delta, scaledBy: 1 - beta1)
            let v0 = secondMoment ?? delta.zeros()
            let v = ParameterSet(zip(v0.tensors, delta.tensors).map { vt, dt in
                ParameterTensor(name: vt.name, shape: vt.shape, values: zip(vt.values, dt.values).map { v, d in
                    let d2 = d * d
                    if kind == .fedAdam { return beta2 * v + (1 - beta2) * d2 }
                    let sign: Float = v - d2 > 0 ? 1 : (v - d2 < 0 ? -1 : 0)
                    return v - (1 - beta2) * d2 * sign
                })
            })
            momentum = m
            secondMoment = v
            return ParameterSet(zip(global.tensors, zip(m.tensors, v.tensors)).map { g, mv in
                let (mt, vt) = mv
                var values = g.values
                for i in values.indices { values[i] += learningRate * mt.values[i] / (vt.values[i].squareRoot() + tau) }
                return ParameterTensor(name: g.name, shape: g.shape, values: values)
            })
        }
    }
}

extension ParameterSet {
    /// Elementwise `scale · self`.
    public func scaled(_ scale: Float) -> ParameterSet {
        ParameterSet(tensors.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values.map { $0 * scale }) })
    }
}
