import DICOMIO
import Foundation
import Volumes

let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func makeVolume(_ geometry: VolumeGeometry, _ value: (Int, Int, Int) -> Float) -> Volume<Float> {
    var voxels = [Float]()
    voxels.reserveCapacity(geometry.voxelCount)
    let n = geometry.dimensions
    for k in 0..<n.z { for j in 0..<n.y { for i in 0..<n.x { voxels.append(value(i, j, k)) } } }
    return Volume(geometry: geometry, voxels: voxels)
}

/// An oblique CT-like grid: rotation of `angle` rad about z, spacing 0.7 × 0.7 × 1.25 mm.
func obliqueGeometry(_ n: SIMD3<Int>, angle: Double = 0.3, origin: Vector3 = Vector3(-40, -35, 12)) -> VolumeGeometry {
    VolumeGeometry(
        dimensions: n, origin: origin, spacing: Vector3(0.7, 0.7, 1.25),
        direction: (
            Vector3(cos(angle), sin(angle), 0), Vector3(-sin(angle), cos(angle), 0),
            Vector3(0, 0, 1)
        ))
}

/// A sphere phantom: the fraction of each voxel inside the sphere (3×3×3 supersampling),
/// so Σ v · voxelVolume approximates the sphere's volume.
func spherePhantom(_ geometry: VolumeGeometry, centre: Vector3, radius: Double) -> Volume<Float> {
    let sub = 3
    let offsets = (0..<sub).map { (Double($0) + 0.5) / Double(sub) - 0.5 }
    return makeVolume(geometry) { i, j, k in
        let p = geometry.position(Double(i), Double(j), Double(k))
        let d = (p - centre).length
        let diagonal = (geometry.spacing * geometry.spacing).sum().squareRoot()
        if d > radius + diagonal { return 0 }
        if d < radius - diagonal { return 1 }
        var inside = 0
        for a in offsets {
            for b in offsets {
                for c in offsets {
                    let p = geometry.position(Double(i) + a, Double(j) + b, Double(k) + c)
                    if (p - centre).length <= radius { inside += 1 }
                }
            }
        }
        return Float(inside) / Float(sub * sub * sub)
    }
}

/// Σ v · voxel volume in mL, and the v-weighted centroid in LPS mm.
func volumeAndCentroid(_ volume: Volume<Float>) -> (millilitres: Double, centroid: Vector3) {
    let g = volume.geometry
    var total = 0.0
    var weighted = Vector3(0, 0, 0)
    for k in 0..<g.dimensions.z {
        for j in 0..<g.dimensions.y {
            for i in 0..<g.dimensions.x {
                let v = Double(volume[i, j, k])
                if v == 0 { continue }
                total += v
                weighted += v * g.position(Double(i), Double(j), Double(k))
            }
        }
    }
    return (total * g.voxelVolume / 1000, weighted / total)
}

func labelVolume(_ volume: Volume<UInt8>) -> (millilitres: Double, centroid: Vector3) {
    volumeAndCentroid(Volume(geometry: volume.geometry, voxels: volume.voxels.map { Float($0 != 0 ? 1 : 0) }))
}

/// Checks that every voxel of `output` holds the value of the `original` voxel at the same patient position (for
/// spatial steps that copy voxels: reorient, crop/pad), and that positions map onto whole source indices.
/// Returns how many voxels were compared (those inside the original grid).
@discardableResult
func expectSamePositions<V: Equatable & Sendable>(_ output: Volume<V>, _ original: Volume<V>) -> Int {
    let o = output.geometry
    let g = original.geometry
    let a = g.indexToPhysicalMatrix
    var compared = 0
    for k in 0..<o.dimensions.z {
        for j in 0..<o.dimensions.y {
            for i in 0..<o.dimensions.x {
                let u = solve(a, o.position(Double(i), Double(j), Double(k)) - g.origin)
                let r = SIMD3(Int(u.x.rounded()), Int(u.y.rounded()), Int(u.z.rounded()))
                if (u - Vector3(Double(r.x), Double(r.y), Double(r.z))).length > 1e-6 { return -1 }
                guard r.x >= 0, r.y >= 0, r.z >= 0, r.x < g.dimensions.x, r.y < g.dimensions.y, r.z < g.dimensions.z
                else { continue }
                if output[i, j, k] != original[r.x, r.y, r.z] { return -1 }
                compared += 1
            }
        }
    }
    return compared
}

extension VolumeGeometry {
    /// Columns direction · spacing.
    var indexToPhysicalMatrix: (Vector3, Vector3, Vector3) {
        (direction.x * spacing.x, direction.y * spacing.y, direction.z * spacing.z)
    }
}

/// Solves [c0 c1 c2] · u = b by Cramer's rule.
func solve(_ m: (Vector3, Vector3, Vector3), _ b: Vector3) -> Vector3 {
    let det = m.0.dot(m.1.cross(m.2))
    return Vector3(b.dot(m.1.cross(m.2)), m.0.dot(b.cross(m.2)), m.0.dot(m.1.cross(b))) / det
}
