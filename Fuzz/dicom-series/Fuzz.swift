// libFuzzer entry for DICOMIO's header model and series assembly: the input is split at each "TSFZ" marker into up
// to 4 files of one folder, which is inspected as `tessera inspect` does (scan, series assembly, SEG headers,
// JSON report); then the primary stack of each series is decoded to floats and each SEG's frames are unpacked and
// placed. Compiled as its own module against an instrumented DICOMIO (see Fuzz/build.sh).
import DICOMIO
import Foundation

private let folder: String = {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    return base + "/tessera-fuzz-series-\(ProcessInfo.processInfo.processIdentifier)"
}()

/// Decoding is skipped above this many voxels per instance: the harness's allocation, not the library's.
private let maximumVoxels = 1 << 22

@_cdecl("LLVMFuzzerTestOneInput")
public func dicomSeriesFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let input = UnsafeBufferPointer(start: start, count: count)
    try? FileManager.default.removeItem(atPath: folder)
    guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)) != nil else {
        preconditionFailure("cannot create \(folder)")
    }
    for (i, part) in split(input).prefix(4).enumerated() {
        guard FileManager.default.createFile(atPath: folder + "/\(i)", contents: Data(part)) else {
            preconditionFailure("cannot write into \(folder)")
        }
    }
    configureDICOMLogging(verbose: false)
    let scanner = DirectoryScanner(threads: 1)
    guard let scan = try? scanner.scan(folder) else { return 0 }
    let series = SeriesAssembler().assemble(scan.instances)
    if let inspection = try? FolderInspection(folder: folder, scan: scan, series: series) {
        _ = try? inspection.json()
    }
    for s in series {
        guard let stack = try? s.primaryStack() else { continue }
        for slice in stack.slices.prefix(4) {
            guard slice.instance >= 0, slice.instance < s.instances.count else {
                preconditionFailure("slice names instance \(slice.instance) of \(s.instances.count)")
            }
            decode(s.instances[slice.instance])
        }
        for instance in scan.instances where instance.isSegmentation {
            guard let seg = try? Segmentation(path: instance.path), let file = try? DICOMFile(path: instance.path)
            else { continue }
            let (voxels, o) = stack.rows.multipliedReportingOverflow(by: stack.columns)
            let (all, o2) = voxels.multipliedReportingOverflow(by: max(stack.slices.count, 1))
            guard !o, !o2, all <= maximumVoxels, voxelCount(instance) != nil else { continue }
            _ = try? seg.frameMasks(file: file)
            _ = try? seg.labelMap(onto: stack, of: s, file: file)
        }
    }
    return 0
}

/// rows × columns × frames, or nil when it overflows or exceeds `maximumVoxels`.
private func voxelCount(_ instance: ImageInstance) -> Int? {
    let (plane, o1) = instance.rows.multipliedReportingOverflow(by: instance.columns)
    let (voxels, o2) = plane.multipliedReportingOverflow(by: instance.numberOfFrames)
    return !o1 && !o2 && voxels >= 0 && voxels <= maximumVoxels ? voxels : nil
}

private func decode(_ instance: ImageInstance) {
    guard let voxels = voxelCount(instance), let file = try? DICOMFile(path: instance.path) else { return }
    var values = [Float](repeating: 0, count: voxels)
    values.withUnsafeMutableBufferPointer { out in _ = try? instance.decodeFrames(from: file, into: out) }
}

/// The parts of `input` between "TSFZ" markers.
private func split(_ input: UnsafeBufferPointer<UInt8>) -> [ArraySlice<UInt8>] {
    let bytes = Array(input)
    let marker: [UInt8] = Array("TSFZ".utf8)
    var parts: [ArraySlice<UInt8>] = []
    var begin = 0
    var i = 0
    while i + marker.count <= bytes.count {
        if bytes[i..<(i + marker.count)].elementsEqual(marker) {
            parts.append(bytes[begin..<i])
            i += marker.count
            begin = i
        } else {
            i += 1
        }
    }
    parts.append(bytes[begin...])
    return parts
}
