// libFuzzer entry for the pipeline YAML readers: the same document goes to the three section readers a pipeline
// passes through (preprocessing/augmentation, model/training, federation) and to the rewrite the server applies
// (`federation.sites`). Compiled as its own module against instrumented Volumes, Training and FederationJobs
// (see Fuzz/build.sh). Property: every reader accepts or throws; none traps.
import FederationJobs
import Foundation
import Training
import Volumes

@_cdecl("LLVMFuzzerTestOneInput")
public func pipelineYAMLFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let yaml = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    _ = try? PreprocessingConfiguration(yaml: yaml)
    _ = try? TrainingConfiguration(yaml: yaml)
    _ = try? FederationConfiguration(yaml: yaml)
    if let rewritten = try? FederationConfiguration.pipeline(yaml, withSites: ["site-a", "site-b"]) {
        // The rewrite must stay readable by the federation reader it feeds.
        _ = try? FederationConfiguration(yaml: rewritten)
    }
    return 0
}
