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
        commandName: "tessera-bench", abstract: "Tessera benchmarks (JSON lines).", subcommands: [DICOMLoad.self, TrainStep.self])
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
