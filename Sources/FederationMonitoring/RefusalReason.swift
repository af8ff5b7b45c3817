import FederationCore

/// Why a site's answer did not count, as the bounded label `reason` of `tessera_results_refused_total`. The job's
/// events say why in words (for the admin); this groups those words into a few kinds, so a metric's label set stays
/// small whatever a message says. A message no rule matches counts as `other`.
public enum RefusalReason: String, Sendable, CaseIterable {
    /// The site declined the task: its own policy or privacy budget says no (`siteDeclined`).
    case declined
    /// The result was counted, then taken out with the round's sums and asked for again.
    case resent
    /// Larger than a limit: bytes, sample count, number of metrics, the reason's own length.
    case tooLarge = "too_large"
    /// A value or metric that is not finite, or out of the allowed range.
    case nonFinite = "non_finite"
    /// Tensor names or shapes that do not match the model.
    case shape
    /// For a round, job or stream that is not (or no longer) the open one.
    case stale
    /// The stream broke or stalled (transport), or the site's upload was abandoned.
    case transport
    /// The site sent nothing usable for the cross-site evaluation (no model, no metrics).
    case missing
    case other

    /// The kind of a refusal event; nil for any other event.
    public init?(_ event: JobEvent) {
        switch event {
        case .siteDeclined: self = .declined
        case .resultRejected(_, _, let reason): self = Self.classify(reason)
        default: return nil
        }
    }

    /// The first rule that matches the message, in the order below (lowercased).
    static func classify(_ message: String) -> RefusalReason {
        let text = message.lowercased()
        let rules: [(RefusalReason, [String])] = [
            (.resent, ["taken out with the round's sums"]),
            (.declined, ["declined", "declines"]),
            (.missing, ["sent no model", "reported no metrics", "no metrics for"]),
            (.nonFinite, ["finite", "nan", "max_update_value", "outside ±"]),
            (.tooLarge, ["bytes", "at most", "larger", "too large", "exceeds"]),
            (.shape, ["shape", "tensor", "unknown parameter", "does not match the model"]),
            (.stale, ["stale", "round", "no result stream", "not running", "outside a result stream"]),
            (.transport, ["stream", "stalled", "broke", "connection", "cancel", "transport"]),
        ]
        for (reason, needles) in rules where needles.contains(where: { text.contains($0) }) { return reason }
        return .other
    }
}
