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
    public enum Kind: String, Sendable, Codable {
        case fedAvg = "fedavg"
        case fedAvgM = "fedavgm"
        case fedAdam = "fedadam"
        case fedYogi = "fedyogi"
    }

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
        var next = global
        try apply(to: &next, delta: delta)
        return next
    }

    /// Applies one server step in place: `global` (and the moments) are updated in their own storage, so the step
    /// needs no model-sized temporary beyond the optimiser's state. Same arithmetic as `step`.
    /// - Throws: `.shapeMismatch` when `delta`'s structure differs from `global`'s (nothing changes then).
    public mutating func apply(to global: inout ParameterSet, delta: ParameterSet) throws(FederationError) {
        try delta.checkStructure(matches: global)
        let (eta, b1, b2, tau, kind) = (learningRate, beta1, beta2, self.tau, self.kind)
        switch kind {
        case .fedAvg:
            try global.add(delta, scaledBy: eta)
        case .fedAvgM:
            var m = try Self.aligned(momentum, with: delta)
            momentum = nil  // unique: updated in place
            try m.updateValues { t, values throws(FederationError) in
                delta.tensors[t].values.withUnsafeBufferPointer { d in
                    values.withUnsafeMutableBufferPointer { m in
                        for i in m.indices { m[i] = m[i] * b1 + 1 * d[i] }
                    }
                }
            }
            try global.add(m, scaledBy: eta)
            momentum = m
        case .fedAdam, .fedYogi:
            var m = try Self.aligned(momentum, with: delta)
            var v = try Self.aligned(secondMoment, with: delta)
            momentum = nil
            secondMoment = nil
            try m.updateValues { t, values throws(FederationError) in
                delta.tensors[t].values.withUnsafeBufferPointer { d in
                    values.withUnsafeMutableBufferPointer { m in
                        for i in m.indices { m[i] = m[i] * b1 + (1 - b1) * d[i] }
                    }
                }
            }
            try v.updateValues { t, values throws(FederationError) in
                delta.tensors[t].values.withUnsafeBufferPointer { d in
                    values.withUnsafeMutableBufferPointer { v in
                        for i in v.indices {
                            let d2 = d[i] * d[i]
                            if kind == .fedAdam {
                                v[i] = b2 * v[i] + (1 - b2) * d2
                            } else {
                                let sign: Float = v[i] - d2 > 0 ? 1 : (v[i] - d2 < 0 ? -1 : 0)
                                v[i] = v[i] - (1 - b2) * d2 * sign
                            }
                        }
                    }
                }
            }
            try global.updateValues { t, values throws(FederationError) in
                m.tensors[t].values.withUnsafeBufferPointer { m in
                    v.tensors[t].values.withUnsafeBufferPointer { v in
                        values.withUnsafeMutableBufferPointer { x in
                            for i in x.indices { x[i] += eta * m[i] / (v[i].squareRoot() + tau) }
                        }
                    }
                }
            }
            momentum = m
            secondMoment = v
        }
    }
}

extension ServerOptimizer {
    /// A moment in `delta`'s tensor order (a restored one comes in the checkpoint file's order); zeros when nil.
    fileprivate static func aligned(_ moment: ParameterSet?, with delta: ParameterSet) throws(FederationError)
        -> ParameterSet
    {
        guard let moment else { return delta.zeros() }
        if moment.structure.map(\.name) == delta.structure.map(\.name) { return moment }
        return try moment.reordered(like: delta)
    }

    /// The moments as one parameter set (what a checkpoint keeps): `m/<tensor>` for the first moment (or FedAvgM's
    /// momentum), `v/<tensor>` for the second; empty before the first step and for FedAvg.
    public var state: ParameterSet {
        func prefixed(_ set: ParameterSet?, _ prefix: String) -> [ParameterTensor] {
            (set?.tensors ?? []).map { ParameterTensor(name: prefix + $0.name, shape: $0.shape, values: $0.values) }
        }
        return ParameterSet(prefixed(momentum, "m/") + prefixed(secondMoment, "v/"))
    }

    /// Takes back the moments saved from `state`, so a resumed job continues the same optimisation.
    /// - Throws: `.shapeMismatch` for a tensor that is neither `m/…` nor `v/…`, or moments this kind keeps none of.
    public mutating func restore(_ state: ParameterSet) throws(FederationError) {
        var m: [ParameterTensor] = []
        var v: [ParameterTensor] = []
        for t in state.tensors {
            if t.name.hasPrefix("m/") {
                m.append(ParameterTensor(name: String(t.name.dropFirst(2)), shape: t.shape, values: t.values))
            } else if t.name.hasPrefix("v/") {
                v.append(ParameterTensor(name: String(t.name.dropFirst(2)), shape: t.shape, values: t.values))
            } else {
                throw FederationError(.shapeMismatch, "server-optimiser state holds an unknown tensor '\(t.name)'")
            }
        }
        let keepsSecond = kind == .fedAdam || kind == .fedYogi
        guard kind != .fedAvg || m.isEmpty, keepsSecond || v.isEmpty else {
            throw FederationError(
                .shapeMismatch,
                "the checkpoint's server-optimiser state does not fit \(kind.rawValue)"
                    + "; was the pipeline's strategy changed?")
        }
        momentum = m.isEmpty ? nil : ParameterSet(m)
        secondMoment = v.isEmpty ? nil : ParameterSet(v)
    }
}

extension ParameterSet {
    /// Elementwise `scale · self`.
    public func scaled(_ scale: Float) -> ParameterSet {
        ParameterSet(
            tensors.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values.map { $0 * scale }) })
    }
}
