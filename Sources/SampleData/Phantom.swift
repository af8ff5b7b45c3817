import DICOMIO
import Foundation

/// A synthetic abdomen in patient LPS coordinates (mm): body with a fat layer, spine, aorta, lung bases, and the two
/// structures to segment — the liver (label 1) and the spleen (label 2), each an ellipsoid with a lobulated surface.
/// Intensities are portal-venous-phase CT values in HU.
public struct AbdomenPhantom: Sendable {
    public struct Ellipsoid: Sendable {
        public var centre: Vector3
        public var semiAxes: Vector3
        /// Amplitude (fraction of the radius) and phases of the surface lobulation.
        public var lobulation: Double
        public var phases: (Double, Double, Double)

        /// Inside test with a smoothly bumpy surface.
        func contains(_ p: Vector3) -> Bool {
            let d = (p - centre) / semiAxes
            let r2 = d.dot(d)
            if r2 > 1.6 { return false }
            let theta = atan2(d.y, d.x)
            let phi = atan2(d.z, (d.x * d.x + d.y * d.y).squareRoot())
            let bump =
                1 + lobulation
                * (sin(3 * theta + phases.0) * 0.6 + sin(2 * phi + phases.1) * 0.3
                    + sin(5 * theta + 3 * phi + phases.2) * 0.1)
            return r2 < bump * bump
        }
    }

    /// Body outline semi-axes (left-right, anterior-posterior), mm.
    public var body: (a: Double, b: Double)
    public var bodyCentre: (x: Double, y: Double)
    public var liver: Ellipsoid
    public var spleen: Ellipsoid
    /// Superior end of the liver dome region; lungs start above this z, mm.
    public var diaphragmZ: Double
    /// Hypodense liver lesions (the screening cohort's classification target); none by default.
    public var lesions: [Lesion] = []

    /// A spherical lesion inside the liver, `contrast` HU darker than the liver.
    public struct Lesion: Sendable {
        public var centre: Vector3
        /// mm.
        public var radius: Double
        /// HU below the liver's (positive: hypodense).
        public var contrast: Double
    }

    /// HU of each tissue.
    public static let air = -1000.0, lung = -850.0, fat = -100.0, softTissue = 40.0, liverHU = 105.0,
        spleenHU = 115.0, aortaHU = 180.0, bone = 650.0, marrow = 250.0

    /// Random anatomy: organ sizes scaled by `organScale`, positions jittered.
    public init(generator g: inout SeededGenerator, centreZ: Double, organScale: Double) {
        body = (g.uniform(140, 165), g.uniform(100, 118))
        bodyCentre = (g.uniform(-8, 8), g.uniform(-6, 6))
        let s = organScale
        liver = Ellipsoid(
            centre: Vector3(
                bodyCentre.x - 52 + g.uniform(-6, 6), bodyCentre.y - 8 + g.uniform(-5, 5), centreZ + g.uniform(-8, 8)),
            semiAxes: Vector3(62 * s, 55 * s, 58 * s) * g.uniform(0.92, 1.08),
            lobulation: g.uniform(0.04, 0.10), phases: (g.uniform(0, 6.28), g.uniform(0, 6.28), g.uniform(0, 6.28)))
        spleen = Ellipsoid(
            centre: Vector3(
                bodyCentre.x + 72 + g.uniform(-5, 5), bodyCentre.y + 28 + g.uniform(-5, 5),
                centreZ + 18 + g.uniform(-8, 8)),
            semiAxes: Vector3(24 * s, 38 * s, 42 * s) * g.uniform(0.85, 1.15),
            lobulation: g.uniform(0.03, 0.08), phases: (g.uniform(0, 6.28), g.uniform(0, 6.28), g.uniform(0, 6.28)))
        diaphragmZ = centreZ + 45 * s
    }

    /// Tissue HU and label (0 none, 1 liver, 2 spleen) at a point.
    public func sample(_ p: Vector3) -> (hu: Double, label: UInt8) {
        let x = p.x - bodyCentre.x
        let y = p.y - bodyCentre.y
        let a = body.a
        let b = body.b
        let rBody = (x / a) * (x / a) + (y / b) * (y / b)
        if rBody > 1 { return (Self.air, 0) }
        let fatEdge = ((x / (a - 14)) * (x / (a - 14)) + (y / (b - 14)) * (y / (b - 14)))
        if fatEdge > 1 { return (Self.fat, 0) }
        // Spine: vertebral body posterior, in the midline (LPS: +y is posterior).
        let sx = x
        let sy = y - (b - 38)
        let rSpine = (sx * sx + sy * sy).squareRoot()
        if rSpine < 17 { return (rSpine > 13 ? Self.bone : Self.marrow, 0) }
        // Aorta: anterior-left of the spine.
        let ax = x - 12
        let ay = y - (b - 62)
        if ax * ax + ay * ay < 11 * 11 { return (Self.aortaHU, 0) }
        if liver.contains(p) {
            for l in lesions {
                let d = p - l.centre
                if d.dot(d) < l.radius * l.radius { return (Self.liverHU - l.contrast, 1) }
            }
            return (Self.liverHU, 1)
        }
        if spleen.contains(p) { return (Self.spleenHU, 2) }
        // Lung bases above the diaphragm, both sides.
        if p.z > diaphragmZ {
            for side in [-1.0, 1.0] {
                let lx = (x - side * 60) / 48
                let ly = (y - 5) / 62
                if lx * lx + ly * ly < 1 { return (Self.lung, 0) }
            }
        }
        return (Self.softTissue, 0)
    }
}

extension AbdomenPhantom {
    /// `count` lesions placed inside the liver's core (centres within 0.55 of its semi-axes), radius and contrast
    /// uniform in the given ranges.
    public mutating func addLesions(
        count: Int, radius: ClosedRange<Double>, contrast: ClosedRange<Double>, generator g: inout SeededGenerator
    ) {
        for _ in 0..<count {
            var direction = Vector3(g.uniform(-1, 1), g.uniform(-1, 1), g.uniform(-1, 1))
            let length = direction.dot(direction).squareRoot()
            if length > 1e-6 { direction = direction / length }
            let reach = g.uniform(0, 0.55)
            let offset = Vector3(
                direction.x * liver.semiAxes.x * reach, direction.y * liver.semiAxes.y * reach,
                direction.z * liver.semiAxes.z * reach)
            lesions.append(
                Lesion(
                    centre: liver.centre + offset, radius: g.uniform(radius.lowerBound, radius.upperBound),
                    contrast: g.uniform(contrast.lowerBound, contrast.upperBound)))
        }
    }
}
