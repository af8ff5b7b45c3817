import Dispatch
import Foundation
import Synchronization

/// A file the scanner did not use, and why.
public struct SkippedFile: Sendable {
    public var path: String
    public var error: DICOMError
    /// (0008,0016) SOP Class UID of a DICOM object skipped as `.notImage` (RT Structure Set, RT Dose, SR...), so
    /// the objects read by other paths (`StructureSet`) can be found in a scan; nil for other failures.
    public var sopClassUID: String? = nil

    public init(path: String, error: DICOMError, sopClassUID: String? = nil) {
        self.path = path
        self.error = error
        self.sopClassUID = sopClassUID
    }
}

/// Everything found under a folder: readable image instances (and SEGs), and the files skipped with a reason.
public struct ScanResult: Sendable {
    public var instances: [ImageInstance]
    public var skipped: [SkippedFile]

    /// Paths of the RT Structure Sets among the skipped files (SOP Class 1.2.840.10008.5.1.4.1.1.481.3), in path
    /// order: read them with `StructureSet(path:limits:)`.
    public var structureSetPaths: [String] {
        skipped.filter { $0.sopClassUID == SOPClass.rtStructureSetStorage }.map(\.path)
    }
}

/// What reading one file gave.
private enum Outcome: Sendable {
    case success(ImageInstance)
    case failure(SkippedFile)
}

/// Walks a folder recursively and reads every file's header, whatever the file names (no extensions, hex names,
/// DICOMDIR present). Unreadable, non-DICOM and non-image files are recorded in `skipped`; nothing stops the scan.
public struct DirectoryScanner: Sendable {
    /// Threads reading headers in parallel.
    public var threads: Int
    /// Bounds on header sizes and on the number of files read (`ReadingLimits.maxFilesPerScan`).
    public var limits: ReadingLimits

    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount, limits: ReadingLimits = .default) {
        self.threads = max(1, threads)
        self.limits = limits
    }

    /// Lists regular files below `root` (or `root` itself if it is a file), sorted by path.
    /// - Throws: `.fileNotFound` when `root` does not exist.
    public func listFiles(_ root: String) throws(DICOMError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw DICOMError(.fileNotFound, "no such file or folder; check the path", path: root)
        }
        if !isDirectory.boolValue { return [root] }
        var files: [String] = []
        let base = URL(fileURLWithPath: root)
        guard
            let walker = FileManager.default.enumerator(
                at: base, includingPropertiesForKeys: [.isRegularFileKey], options: [])
        else {
            throw DICOMError(.io, "cannot list the folder; check its permissions", path: root)
        }
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey])
            if values?.isRegularFile == true { files.append(url.path) }
        }
        return files.sorted()
    }

    /// Scans a folder (or one file).
    ///
    /// Files beyond `limits.maxFilesPerScan` (in path order) are not read; each is listed in `skipped`.
    public func scan(_ root: String) throws(DICOMError) -> ScanResult {
        let listed = try listFiles(root)
        let files = Array(listed.prefix(max(0, limits.maxFilesPerScan)))
        let limits = self.limits
        let results = Mutex<[(Int, Outcome)]>([])
        let next = Atomic<Int>(0)
        let workers = min(threads, max(1, files.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            var local: [(Int, Outcome)] = []
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= files.count { break }
                var file: DICOMFile?
                do throws(DICOMError) {
                    file = try DICOMFile(path: files[i])
                    guard let opened = file else { continue }
                    let instance = try ImageInstance(file: opened, limits: limits)
                    if instance.isDICOMDIR {
                        let error = DICOMError(
                            .notDICOM, "DICOMDIR (a media directory index, not an image); skipped", path: files[i])
                        local.append((i, .failure(SkippedFile(path: files[i], error: error))))
                    } else {
                        local.append((i, .success(instance)))
                    }
                } catch {
                    let sopClass = error.code == .notImage ? file?.dataset.nonEmptyString(.sopClassUID) : nil
                    local.append((i, .failure(SkippedFile(path: files[i], error: error, sopClassUID: sopClass))))
                }
            }
            results.withLock { $0.append(contentsOf: local) }
        }
        var instances: [ImageInstance] = []
        var skipped: [SkippedFile] = []
        for (i, result) in results.withLock({ $0 }).sorted(by: { $0.0 < $1.0 }) {
            switch result {
            case .success(let instance): instances.append(instance)
            case .failure(let skip): skipped.append(skip)
            }
        }
        for path in listed.dropFirst(files.count) {
            skipped.append(
                SkippedFile(
                    path: path,
                    error: DICOMError(
                        .invalidArgument,
                        "not read: the folder holds \(listed.count) files, more than the limit of "
                            + "\(limits.maxFilesPerScan) (ReadingLimits.maxFilesPerScan); scan a sub-folder or raise the limit",
                        path: path)))
        }
        return ScanResult(instances: instances, skipped: skipped)
    }
}
