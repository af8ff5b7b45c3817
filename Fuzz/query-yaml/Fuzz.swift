// libFuzzer entry for the statistics query YAML reader (Sources/FederatedAnalytics/Query/StatisticsQuery.swift),
// compiled as its own module against an instrumented FederatedAnalytics (see Fuzz/build.sh). Property: the
// reader accepts (and validates) or throws; it never traps.
import FederatedAnalytics
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func queryYAMLFuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let yaml = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    _ = try? StatisticsQuery.parse(yaml, source: "fuzz")
    return 0
}
