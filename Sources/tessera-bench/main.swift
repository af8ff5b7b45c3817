import ArgumentParser
import DICOMIO
import Foundation
import Tensors
import Volumes

// Same OpenBLAS core selection as the tessera binary.
BLASRuntime.relaunchWithBestCoreIfNeeded()
TesseraBench.main()

/// Benchmarks, run beside their peers by the scripts in Benchmarks/. Each prints one JSON line per timed run.
struct TesseraBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera-bench", abstract: "Tessera benchmarks (JSON lines).",
        subcommands: [
            DICOMLoad.self, ResampleBench.self, TrainStep.self, ConvLayers.self, FederationRound.self,
            FederationClientCommand.self, Machine.self,
        ])
}

/// Loads a DICOM series into a float32 HU volume, as `tessera convert` does: scan headers, sort, decode.
struct DICOMLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dicom-load")

    @Argument(help: "Folder holding one series.") var folder: String
    @Option(help: "Decoding threads (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .customLong("repeat"), help: "Timed runs.") var repeats = 5
    @Option(help: "Untimed warm-up runs.") var warmup = 1
    @Option(help: "Write the last volume as raw float32 here (for verification).") var dump: String?

    func run() throws {
        MemoryPolicy.retainFreedMemory()  // as measured since 2026-11-21
        for run in 0..<(warmup + repeats) {
            let clock = ContinuousClock()
            let t0 = clock.now
            let cpu0 = cpuSeconds()
            let scan = try DirectoryScanner(threads: threads).scan(folder)
            let series = SeriesAssembler().assemble(scan.instances)
            guard let first = series.first else { throw ValidationError("no series in \(folder)") }
            let t1 = clock.now
            let volume = try Volume<Float>(series: first, threads: threads)
            let t2 = clock.now
            let wall = seconds(t2 - t0)
            let slices = volume.geometry.dimensions.z
            let bytes = scan.instances.reduce(0) { total, i in
                total + ((try? FileManager.default.attributesOfItem(atPath: i.path)[.size] as? Int) ?? 0)
            }
            if run >= warmup {
                let line: [String: Any] = [
                    "tool": "tessera", "mode": "volume", "threads": threads, "dir": folder, "slices": slices,
                    "fails": scan.skipped.count, "wall_s": round4(wall), "header_s": round4(seconds(t1 - t0)),
                    "decode_s": round4(seconds(t2 - t1)), "cpu_s": round4(cpuSeconds() - cpu0), "bytes": bytes,
                    "slices_per_s": (Double(slices) / wall * 10).rounded() / 10,
                ]
                let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            if let dump, run == warmup + repeats - 1 {
                try volume.voxels.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dump)) }
            }
        }
    }

    func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    func round4(_ v: Double) -> Double { (v * 10000).rounded() / 10000 }

    func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
    }
}

/// Resamples a synthetic 512×512×256 float CT (0.7 × 0.7 × 1.25 mm) to 1.5 mm isotropic and z-scores it, as the
/// preprocessing pipeline does; one JSON line per timed run (volume generation is not timed).
struct ResampleBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resample")

    @Option(help: "Input shape x,y,z.") var shape = "512,512,256"
    @Option(help: "Input spacing x,y,z in mm.") var spacing = "0.7,0.7,1.25"
    @Option(help: "Target isotropic spacing, mm.") var target = 1.5
    @Flag(help: "Skip the Gaussian anti-aliasing pre-filter (like SimpleITK's and MONAI's defaults).")
    var noAntiAlias = false
    @Option(name: .customLong("repeat"), help: "Timed runs.") var repeats = 5
    @Option(help: "Untimed warm-up runs.") var warmup = 1
    @Option(help: "Write the input volume as raw float32 (z, y, x order) here, for the peers' cross-check.")
    var dumpInput: String?
    @Option(help: "Write the last output volume as raw float32 here.") var dumpOutput: String?

    func run() throws {
        MemoryPolicy.retainFreedMemory()  // as measured since 2026-11-21
        let n = shape.split(separator: ",").compactMap { Int($0) }
        let s = spacing.split(separator: ",").compactMap { Double($0) }
        guard n.count == 3, s.count == 3 else { throw ValidationError("--shape and --spacing take x,y,z") }
        let geometry = VolumeGeometry(
            dimensions: SIMD3(n[0], n[1], n[2]), origin: Vector3(-179, -179, -160),
            spacing: Vector3(s[0], s[1], s[2]))
        let volume = Self.syntheticCT(geometry)
        var pipeline = VolumePipeline([
            Resample(spacing: Vector3(target, target, target), antiAlias: !noAntiAlias), ZScore(),
        ])
        if let dumpInput {
            try volume.voxels.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dumpInput)) }
        }
        for run in 0..<(warmup + repeats) {
            let clock = ContinuousClock()
            let t0 = clock.now
            let out = try pipeline.apply(Sample(image: volume))
            if let dumpOutput, run == warmup + repeats - 1 {
                try out.image.voxels.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dumpOutput)) }
            }
            let wall = clock.now - t0
            if run >= warmup {
                let d = out.image.geometry.dimensions
                let line: [String: Any] = [
                    "tool": "tessera", "anti_alias": !noAntiAlias,
                    "threads": ProcessInfo.processInfo.activeProcessorCount,
                    "input": n, "output": [d.x, d.y, d.z],
                    "wall_s": (Double(wall.components.seconds) + Double(wall.components.attoseconds) * 1e-18)
                        .rounded(toPlaces: 4),
                    "mean": out.image.statistics.mean.rounded(toPlaces: 6),
                ]
                let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }

    /// A body-like phantom: an elliptical cylinder of soft tissue (40 HU) with a bone ring and lungs, in air
    /// (−1000 HU), plus deterministic pseudo-noise (±20 HU).
    static func syntheticCT(_ g: VolumeGeometry) -> Volume<Float> {
        let n = g.dimensions
        var voxels = [Float](repeating: -1000, count: g.voxelCount)
        voxels.withUnsafeMutableBufferPointer { v in
            for k in 0..<n.z {
                for j in 0..<n.y {
                    let y = (Double(j) - Double(n.y) / 2) / (Double(n.y) * 0.35)
                    for i in 0..<n.x {
                        let x = (Double(i) - Double(n.x) / 2) / (Double(n.x) * 0.45)
                        let r = x * x + y * y
                        var value: Float = -1000
                        if r < 1 {
                            value = r > 0.85 ? 700 : 40
                            let lung = (abs(x) - 0.45) * (abs(x) - 0.45) / 0.06 + y * y / 0.4
                            if lung < 1 && k > n.z / 4 { value = -850 }
                        }
                        var h = UInt64(truncatingIfNeeded: (k * n.y + j) * n.x + i) &* 0x9E37_79B9_7F4A_7C15
                        h ^= h >> 29
                        v[(k * n.y + j) * n.x + i] = value + Float(h % 41) - 20
                    }
                }
            }
        }
        return Volume(geometry: g, voxels: voxels)
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (self * scale).rounded() / scale
    }
}
