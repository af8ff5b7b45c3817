import Foundation

func checkProbability(_ p: Double, _ transform: String) throws(VolumesError) {
    guard p >= 0, p <= 1 else {
        throw VolumesError(.invalidParameter, transform: transform, "probability \(p) must be in [0, 1]")
    }
}
