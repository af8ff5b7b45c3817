/// A one-line text progress bar for training steps, e.g.
/// `epoch  3/12 [##########----------]  16/32 steps  loss 0.4231  4.1 s`.
///
/// Rendering is pure (the command decides where it goes: redrawn with `\r` on a terminal's stderr, plain log lines
/// otherwise).
public struct ProgressBar: Sendable {
    /// Characters between the brackets.
    public var width: Int

    public init(width: Int = 20) { self.width = max(1, width) }

    /// The bar for `progress` (no line terminator).
    public func render(_ progress: StepProgress) -> String {
        let fraction = progress.steps > 0 ? min(1, Double(progress.step) / Double(progress.steps)) : 1
        let filled = min(width, max(0, Int(exactly: (fraction * Double(width)).rounded(.down)) ?? 0))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let epochDigits = String(progress.epochs).count
        let stepDigits = String(progress.steps).count
        func padded(_ n: Int, _ digits: Int) -> String {
            let s = String(n)
            return String(repeating: " ", count: max(0, digits - s.count)) + s
        }
        let seconds = (progress.seconds * 10).rounded() / 10
        let loss = (progress.meanLoss * 10_000).rounded() / 10_000
        return "epoch \(padded(progress.epoch, epochDigits))/\(progress.epochs) [\(bar)] "
            + "\(padded(progress.step, stepDigits))/\(progress.steps) steps  loss \(fixed(loss, 4))  \(fixed(seconds, 1)) s"
    }

    /// `value` with exactly `decimals` digits after the point (no Foundation formatting: locale-independent).
    func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        guard let scaled = Int(exactly: (abs(value) * scale).rounded()) else { return "\(value)" }
        let whole = scaled / Int(scale)
        let fraction = scaled % Int(scale)
        let digits = String(fraction)
        let sign = value < 0 && scaled != 0 ? "-" : ""
        return sign + String(whole)
            + (decimals > 0
                ? "." + String(repeating: "0", count: decimals - digits.count) + digits : "")
    }
}
