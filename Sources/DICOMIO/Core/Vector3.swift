/// A 3-vector of doubles in patient (LPS) millimetres or a direction cosine.
public typealias Vector3 = SIMD3<Double>

extension SIMD3 where Scalar == Double {
    public func dot(_ other: Vector3) -> Double { (self * other).sum() }
    public func cross(_ b: Vector3) -> Vector3 {
        Vector3(y * b.z - z * b.y, z * b.x - x * b.z, x * b.y - y * b.x)
    }
    public var length: Double { dot(self).squareRoot() }
    public var normalized: Vector3 {
        let l = length
        return l > 0 ? self / l : self
    }
}
