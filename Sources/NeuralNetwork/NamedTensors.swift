import Tensors

/// An ordered collection of tensors addressed by name: a PyTorch `state_dict`, a set of gradients, or optimiser
/// state. Names are dotted paths (`enc.0.c1.weight`); insertion order is kept.
public struct NamedTensors: Sendable, Equatable, Sequence {
    public private(set) var names: [String] = []
    private var values: [String: Tensor] = [:]

    public init() {}

    /// A collection from `(name, tensor)` pairs, in order; a repeated name keeps the last tensor.
    public init(_ pairs: [(String, Tensor)]) {
        for (name, tensor) in pairs { self[name] = tensor }
    }

    /// The tensor called `name`; assigning nil removes it.
    public subscript(name: String) -> Tensor? {
        get { values[name] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: name) == nil { names.append(name) }
            } else if values.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }

    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < names.count else { return nil }
            defer { i += 1 }
            return (names[i], values[names[i]]!)
        }
    }

    /// Every name prefixed with `prefix.`.
    public func prefixed(_ prefix: String) -> NamedTensors {
        NamedTensors(names.map { ("\(prefix).\($0)", values[$0]!) })
    }

    /// The entries under `prefix.`, with the prefix removed.
    public func scoped(_ prefix: String) -> NamedTensors {
        let p = prefix + "."
        return NamedTensors(names.filter { $0.hasPrefix(p) }.map { (String($0.dropFirst(p.count)), values[$0]!) })
    }

    /// Appends the entries of `other` (replacing equal names).
    public mutating func merge(_ other: NamedTensors) {
        for (name, tensor) in other { self[name] = tensor }
    }

    /// Total number of elements.
    public var elementCount: Int { values.values.reduce(0) { $0 + $1.count } }

    /// Checks that `self` has exactly the names of `reference`, each with the same shape.
    /// - Throws: `NeuralNetworkError` `.missingTensor`, `.unexpectedTensor` or `.shapeMismatch`, naming the tensor.
    public func validate(against reference: NamedTensors) throws {
        for name in reference.names {
            guard let mine = values[name] else {
                throw NeuralNetworkError(
                    .missingTensor,
                    "tensor '\(name)' (shape \(reference[name]!.shape)) is "
                        + "missing: the weights were saved from a different model or configuration")
            }
            guard mine.shape == reference[name]!.shape else {
                throw NeuralNetworkError(
                    .shapeMismatch,
                    "tensor '\(name)' has shape \(mine.shape) but the model "
                        + "expects \(reference[name]!.shape): check the model's channels and kernel sizes")
            }
        }
        for name in names where reference[name] == nil {
            throw NeuralNetworkError(
                .unexpectedTensor,
                "tensor '\(name)' is not a parameter of this model: the "
                    + "weights were saved from a different model or configuration")
        }
    }

    /// The tensor called `name`, or an error naming it.
    func require(_ name: String) throws -> Tensor {
        guard let t = values[name] else {
            throw NeuralNetworkError(.missingTensor, "tensor '\(name)' is missing")
        }
        return t
    }
}
