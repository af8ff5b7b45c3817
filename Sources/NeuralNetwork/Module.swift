import Tensors

/// Something with named parameters: a layer or a model.
///
/// `parameters` are the trainable tensors and `buffers` the rest of the PyTorch `state_dict` (e.g. batch norm's
/// running statistics), both under PyTorch's names and layouts.
public protocol Module: Sendable {
    /// Trainable tensors by `state_dict` name.
    var parameters: NamedTensors { get }
    /// Non-trainable state by `state_dict` name (empty for most layers).
    var buffers: NamedTensors { get }
    /// Replaces parameters and buffers from `state`, which holds exactly the names of `stateDict`.
    mutating func update(parameters state: NamedTensors) throws
    /// The `stateDict` names of the module's normalisation layers (affine γ and β, and batch norm's running
    /// statistics): what FedBN (Li et al. 2021) keeps at each site. Empty for modules without normalisation.
    var normalizationVariables: [String] { get }
}

extension Module {
    public var buffers: NamedTensors { NamedTensors() }

    public var normalizationVariables: [String] { [] }

    /// `normalizationVariables` of a submodule as its parent names them (`prefix.name`).
    func normalizationVariables(prefixed prefix: String) -> [String] {
        normalizationVariables.map { "\(prefix).\($0)" }
    }

    /// Parameters followed by buffers: what PyTorch's `state_dict()` returns.
    public var stateDict: NamedTensors {
        var all = parameters
        all.merge(buffers)
        return all
    }

    /// Loads a full `state_dict` strictly (PyTorch's `load_state_dict(strict=True)`).
    /// - Throws: `NeuralNetworkError` naming the first missing, unexpected or mis-shaped tensor.
    public mutating func load(_ state: NamedTensors) throws {
        try state.validate(against: stateDict)
        try update(parameters: state)
    }

    /// Replaces only the trainable parameters (what an optimiser changes).
    public mutating func updateParameters(_ newParameters: NamedTensors) throws {
        try newParameters.validate(against: parameters)
        var state = newParameters
        state.merge(buffers)
        try update(parameters: state)
    }
}

/// A layer: a module with a forward pass and the matching backward pass.
public protocol Layer: Module {
    /// What the backward pass needs from the forward pass.
    associatedtype Cache: Sendable
    /// `output = f(input)`; `training` selects batch statistics and dropout. Mutating only for layers with state
    /// that training updates (batch norm's running statistics).
    mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: Cache)
    /// `∂L/∂input` (nil when the layer was told not to compute it) and `∂L/∂parameter` by parameter name.
    func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors)
}
