import CZlib
import DICOMIO
import Foundation

/// NIfTI-1 single-file (`.nii`, or gzip-compressed `.nii.gz`) writing and reading.
///
/// The header's sform (code 1, scanner) is the full voxel → RAS mm affine, so sheared (gantry-tilt) grids are
/// exact; the qform (code 1) carries the rotation as a quaternion when the grid is orthonormal, and is 0 otherwise.
/// LPS (DICOM) becomes RAS (NIfTI) by negating x and y. Data: float32 (datatype 16) or uint8 (2), x fastest.
///
/// pixdim[1...3] are the norms of the sform's columns (the voxel edge lengths), so the header is self-consistent
/// for sheared grids too. NIfTI-1 stores each dimension as an int16: a grid with more than 32767 voxels along an
/// axis (legal DICOM has up to 65535 columns) is refused with an error naming the axis; crop or resample it first.
public enum NIfTI {
    /// The largest voxel count along one axis NIfTI-1 can hold (dim[] is int16).
    public static let maxDimension = Int(Int16.max)

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var path: String
        public var description: String { "\(path): \(message)" }
    }

    /// Writes a float32 volume.
    public static func write(_ volume: Volume<Float>, to path: String, description: String = "") throws(NIfTI.Error) {
        let data = volume.voxels.withUnsafeBytes { Data($0) }
        try write(geometry: volume.geometry, datatype: 16, bitpix: 32, data: data, to: path, description: description)
    }

    /// Writes a uint8 label volume.
    public static func write(_ volume: Volume<UInt8>, to path: String, description: String = "") throws(NIfTI.Error) {
        try write(
            geometry: volume.geometry, datatype: 2, bitpix: 8, data: Data(volume.voxels), to: path,
            description: description)
    }

    /// The 352-byte header.
    /// - Throws: when a dimension is outside 1...32767 or the geometry is not finite.
    static func header(
        geometry g: VolumeGeometry, datatype: Int16, bitpix: Int16, description: String,
        path: String = ""
    ) throws(NIfTI.Error) -> Data {
        var dimensions: [Int16] = []
        for (a, name) in ["x (columns)", "y (rows)", "z (slices)"].enumerated() {
            let n = g.dimensions[a]
            guard n >= 1, n <= maxDimension, let d = Int16(exactly: n) else {
                throw NIfTI.Error(
                    message: "the volume has \(n) voxels along \(name); NIfTI-1 holds 1 to "
                        + "\(maxDimension) per axis (dim is int16). Crop or resample the volume first",
                    path: path)
            }
            dimensions.append(d)
        }
        let columns = [g.direction.x * g.spacing.x, g.direction.y * g.spacing.y, g.direction.z * g.spacing.z]
        let norms = columns.map(\.length)
        guard norms.allSatisfy({ $0.isFinite && $0 > 0 }), g.origin.x.isFinite, g.origin.y.isFinite,
            g.origin.z.isFinite
        else {
            throw NIfTI.Error(
                message: "the volume's spacing, direction or origin is not finite and positive "
                    + "(spacing \(g.spacing.x), \(g.spacing.y), \(g.spacing.z) mm)", path: path)
        }
        var h = Data(count: 352)
        func put<T>(_ value: T, _ offset: Int) {
            withUnsafeBytes(of: value) { h.replaceSubrange(offset..<(offset + $0.count), with: $0) }
        }
        put(Int32(348), 0)
        put(UInt8(ascii: "r"), 38)
        let dims: [Int16] = [3] + dimensions + [1, 1, 1, 1]
        for (i, d) in dims.enumerated() { put(d, 40 + 2 * i) }
        put(datatype, 70)
        put(bitpix, 72)
        let ras = g.affineRAS
        // qform: rotation of the orthonormal frame, with qfac = -1 when it is left-handed.
        var qfac: Float = 1
        var qform: Int16 = 0
        var quaternion = (b: 0.0, c: 0.0, d: 0.0)
        if g.isOrthonormal {
            var r = [[Double]](repeating: [0, 0, 0], count: 3)
            let s = norms
            for row in 0..<3 { for col in 0..<3 { r[row][col] = ras[row][col] / s[col] } }
            let det =
                r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
                + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
            if det < 0 {
                qfac = -1
                for row in 0..<3 { r[row][2] = -r[row][2] }
            }
            quaternion = quaternionFrom(r)
            qform = 1
        }
        // Column norms of the sform, not the nominal spacing: equal for unit directions, and still consistent when
        // a direction is not unit length.
        let pixdim: [Float] = [qfac, Float(norms[0]), Float(norms[1]), Float(norms[2]), 0, 0, 0, 0]
        for (i, p) in pixdim.enumerated() { put(p, 76 + 4 * i) }
        put(Float(352), 108)  // vox_offset
        put(Float(1), 112)  // scl_slope
        put(Float(0), 116)  // scl_inter
        put(UInt8(2), 123)  // xyzt_units: NIFTI_UNITS_MM
        var text = Array(description.utf8.prefix(79))
        text.append(0)
        h.replaceSubrange(148..<(148 + text.count), with: text)
        put(qform, 252)
        put(Int16(1), 254)  // sform_code: NIFTI_XFORM_SCANNER_ANAT
        put(Float(quaternion.b), 256)
        put(Float(quaternion.c), 260)
        put(Float(quaternion.d), 264)
        put(Float(ras[0][3]), 268)
        put(Float(ras[1][3]), 272)
        put(Float(ras[2][3]), 276)
        for row in 0..<3 { for col in 0..<4 { put(Float(ras[row][col]), 280 + 16 * row + 4 * col) } }
        h.replaceSubrange(344..<348, with: [0x6E, 0x2B, 0x31, 0x00])  // "n+1\0"
        return h
    }

    /// Quaternion (b, c, d) of a proper rotation matrix, as nifti1_io's nifti_mat44_to_quatern (a ≥ 0).
    static func quaternionFrom(_ r: [[Double]]) -> (b: Double, c: Double, d: Double) {
        let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2])
        let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2])
        let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2])
        var a = r11 + r22 + r33 + 1
        var b: Double
        var c: Double
        var d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (r32 - r23) / a
            c = 0.25 * (r13 - r31) / a
            d = 0.25 * (r21 - r12) / a
        } else {
            let xd = 1 + r11 - (r22 + r33)
            let yd = 1 + r22 - (r11 + r33)
            let zd = 1 + r33 - (r11 + r22)
            if xd > 1 {
                b = 0.5 * xd.squareRoot()
                c = 0.25 * (r12 + r21) / b
                d = 0.25 * (r13 + r31) / b
                a = 0.25 * (r32 - r23) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot()
                b = 0.25 * (r12 + r21) / c
                d = 0.25 * (r23 + r32) / c
                a = 0.25 * (r13 - r31) / c
            } else {
                d = 0.5 * zd.squareRoot()
                b = 0.25 * (r13 + r31) / d
                c = 0.25 * (r23 + r32) / d
                a = 0.25 * (r21 - r12) / d
            }
            if a < 0 {
                b = -b
                c = -c
                d = -d
            }
        }
        return (b, c, d)
    }

    static func write(
        geometry: VolumeGeometry, datatype: Int16, bitpix: Int16, data: Data, to path: String,
        description: String
    ) throws(NIfTI.Error) {
        var bytes = try header(
            geometry: geometry, datatype: datatype, bitpix: bitpix, description: description,
            path: path)
        bytes.append(data)
        if path.hasSuffix(".gz") {
            guard let gz = gzopen(path, "wb6") else {
                throw NIfTI.Error(
                    message: "cannot create the file; check the folder exists and is writable",
                    path: path)
            }
            var offset = 0
            var failed = false
            bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let n = min(1 << 30, raw.count - offset)
                    if gzwrite(gz, raw.baseAddress! + offset, UInt32(n)) != Int32(n) {
                        failed = true
                        break
                    }
                    offset += n
                }
            }
            if gzclose(gz) != Z_OK || failed {
                throw NIfTI.Error(message: "gzip write failed (disk full?)", path: path)
            }
        } else {
            do { try bytes.write(to: URL(fileURLWithPath: path)) } catch {
                throw NIfTI.Error(message: "cannot write the file: \(error.localizedDescription)", path: path)
            }
        }
    }
}

// MARK: - Reading

extension NIfTI {
    /// A NIfTI-1 file as read: its header fields of interest and the raw voxel bytes.
    public struct File: Sendable {
        /// [x, y, z] voxel counts.
        public var dimensions: SIMD3<Int>
        /// NIfTI datatype code: 2 uint8, 4 int16, 16 float32.
        public var datatype: Int
        /// pixdim[1...3], mm.
        public var spacing: Vector3
        public var qformCode: Int
        public var sformCode: Int
        /// qfac (pixdim[0]) and quatern_b/c/d, qoffset_x/y/z.
        public var qfac: Double
        public var quaternion: (b: Double, c: Double, d: Double)
        public var qoffset: Vector3
        /// srow_x, srow_y, srow_z: the voxel → RAS mm affine's first three rows.
        public var sform: [[Double]]
        public var description: String
        /// scl_slope and scl_inter: stored value s means slope · s + inter (slope 0: no scaling).
        public var scaling: (slope: Double, inter: Double)
        /// bitpix: bits per stored voxel.
        public var bitsPerVoxel: Int
        public var data: [UInt8]

        /// Voxels as float32 (datatype 16).
        public func floats() throws(NIfTI.Error) -> [Float] {
            guard datatype == 16 else { throw NIfTI.Error(message: "datatype \(datatype) is not float32", path: "") }
            return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }

    /// The default bound of `read(_:maxBytes:)`: 2 GiB of (decompressed) file.
    public static let defaultMaxBytes = 1 << 31

    /// Reads a `.nii` or `.nii.gz` file (little-endian NIfTI-1 single file).
    /// - Parameter maxBytes: the largest (decompressed) file accepted; a larger one, or a gzip stream that inflates
    ///   past it, is refused before more memory is taken.
    public static func read(_ path: String, maxBytes: Int = defaultMaxBytes) throws(NIfTI.Error) -> File {
        var bytes = [UInt8]()
        let tooLarge = NIfTI.Error(
            message: "larger than \(maxBytes) bytes (decompressed); NIfTI files are read whole", path: path)
        if path.hasSuffix(".gz") {
            guard let gz = gzopen(path, "rb") else { throw NIfTI.Error(message: "cannot open the file", path: path) }
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = gzread(gz, &chunk, UInt32(chunk.count))
                if n < 0 {
                    gzclose(gz)
                    throw NIfTI.Error(message: "corrupt gzip data", path: path)
                }
                if n == 0 { break }
                guard bytes.count <= maxBytes - Int(n) else {
                    gzclose(gz)
                    throw tooLarge
                }
                bytes.append(contentsOf: chunk[0..<Int(n)])
            }
            gzclose(gz)
        } else {
            if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes {
                throw tooLarge
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw NIfTI.Error(message: "cannot read the file", path: path)
            }
            bytes = [UInt8](data)
        }
        guard bytes.count >= 352 else { throw NIfTI.Error(message: "shorter than a NIfTI-1 header", path: path) }
        func get<T>(_ offset: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        }
        guard get(0, Int32.self) == 348, bytes[344] == 0x6E, bytes[345] == 0x2B, bytes[346] == 0x31 else {
            throw NIfTI.Error(message: "not a little-endian NIfTI-1 single file (sizeof_hdr/magic)", path: path)
        }
        let dims = SIMD3(Int(get(42, Int16.self)), Int(get(44, Int16.self)), Int(get(46, Int16.self)))
        let datatype = Int(get(70, Int16.self))
        let bitpix = Int(get(72, Int16.self))
        guard dims.x >= 1, dims.y >= 1, dims.z >= 1, [8, 16, 32, 64].contains(bitpix) else {
            throw NIfTI.Error(message: "dim \(dims.x)×\(dims.y)×\(dims.z) or bitpix \(bitpix) is not valid", path: path)
        }
        // int16 dims and bitpix ≤ 64: the product fits in an Int; vox_offset is a float that may hold anything.
        let count = dims.x * dims.y * dims.z * bitpix / 8
        guard let offset = Int(checked: Double(get(108, Float.self))), offset >= 348, offset <= bytes.count,
            bytes.count - offset >= count
        else {
            throw NIfTI.Error(message: "voxel data is truncated or vox_offset is not valid", path: path)
        }
        var sform: [[Double]] = []
        for row in 0..<3 { sform.append((0..<4).map { Double(get(280 + 16 * row + 4 * $0, Float.self)) }) }
        let text = bytes[148..<228].prefix { $0 != 0 }
        return File(
            dimensions: dims, datatype: datatype,
            spacing: Vector3(Double(get(80, Float.self)), Double(get(84, Float.self)), Double(get(88, Float.self))),
            qformCode: Int(get(252, Int16.self)), sformCode: Int(get(254, Int16.self)),
            qfac: Double(get(76, Float.self)),
            quaternion: (Double(get(256, Float.self)), Double(get(260, Float.self)), Double(get(264, Float.self))),
            qoffset: Vector3(Double(get(268, Float.self)), Double(get(272, Float.self)), Double(get(276, Float.self))),
            sform: sform, description: String(decoding: text, as: UTF8.self),
            scaling: (Double(get(112, Float.self)), Double(get(116, Float.self))), bitsPerVoxel: bitpix,
            data: Array(bytes[offset..<(offset + count)]))
    }
}
