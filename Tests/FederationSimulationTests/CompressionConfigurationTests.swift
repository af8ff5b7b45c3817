import FederationCore
import FederationJobs
import FederationServer
import Foundation
import Testing

@Suite("federation.compression in the pipeline: parsing, what the tasks carry, what it cannot be combined with")
struct CompressionConfigurationTests {
    func parse(_ extra: String) throws(FederationError) -> FederationConfiguration {
        try FederationConfiguration(yaml: "federation:\n  min_clients: 2\n  sites: [a, b, c]\n" + extra)
    }

    @Test(
        "Each mode parses; int8 takes a block size; the job's tasks carry the encoding (nothing for none)",
        arguments: [
            ("", UpdateEncoding.float32),
            ("  compression: none\n", .float32),
            ("  compression: fp16\n", .float16),
            ("  compression: bf16\n", .bfloat16),
            ("  compression: int8\n", .int8Blocks(blockSize: 256)),
            ("  compression: int8\n  compression_block_size: 1024\n", .int8Blocks(blockSize: 1024)),
        ])
    func modes(yaml: String, encoding: UpdateEncoding) throws {
        let federation = try parse(yaml)
        #expect(federation.compression == encoding)
        let job = federation.jobConfiguration(jobID: "j", sites: ["a", "b", "c"])
        #expect(try UpdateEncoding(taskConfig: job.taskConfig) == encoding)
        if encoding == .float32 { #expect(job.taskConfig[UpdateEncoding.configKey] == nil) }
    }

    @Test("The shipped pipeline's compression keys parse as documented")
    func shipped() throws {
        let shipped = RobustAggregationConfigurationTests.shipped
        #expect(try FederationConfiguration(yaml: shipped).compression == .float32)
        let example = shipped.replacingOccurrences(of: "  # compression: int8\n", with: "  compression: int8\n")
            .replacingOccurrences(of: "  # compression_block_size: 256\n", with: "  compression_block_size: 256\n")
        #expect(example != shipped)
        #expect(try FederationConfiguration(yaml: example).compression == .int8Blocks(blockSize: 256))
    }

    @Test(
        "Bad values and combinations are refused at configuration time, naming the key",
        arguments: [
            ("  compression: int4\n", "federation.compression"),
            ("  compression: [int8]\n", "federation.compression"),
            ("  compression: fp16\n  compression_block_size: 256\n", "int8 only"),
            ("  compression: int8\n  compression_block_size: 8\n", "compression_block_size"),
            ("  compression: int8\n  compression_block_size: 1000000\n", "compression_block_size"),
            ("  compression: int8\n  secure_aggregation: true\n", "secure_aggregation cannot carry"),
            ("  compression: bf16\n  client_dp: {clip_norm: 1, noise_multiplier: 1, noise: server}\n", "noise: sites"),
            ("  download_compression: int4\n", "federation.download_compression"),
            ("  download_compression: {a: 1}\n", "federation.download_compression"),
            ("  download_compression: bf16\n  download_compression_block_size: 256\n", "int8 only"),
            (
                "  download_compression: int8\n  download_compression_block_size: 15\n",
                "download_compression_block_size"
            ),
        ])
    func refused(yaml: String, mentions: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }

    @Test("Compression composes with client-level DP noised at the sites and with robust aggregation")
    func composes() throws {
        let dp = try parse("  compression: int8\n  client_dp: {clip_norm: 1, noise_multiplier: 1, noise: sites}\n")
        #expect(dp.compression == .int8Blocks(blockSize: 256))
        let robust = try FederationConfiguration(
            yaml: "federation:\n  min_clients: 3\n  sites: [a, b, c]\n  compression: fp16\n"
                + "  robust_aggregation: {rule: median}\n")
        #expect(robust.compression == .float16)
    }

    @Test(
        "download_compression: each mode parses into the job's download encoding; it combines with secure aggregation",
        arguments: [
            ("", UpdateEncoding.float32),
            ("  download_compression: none\n", .float32),
            ("  download_compression: fp16\n", .float16),
            ("  download_compression: bf16\n", .bfloat16),
            ("  download_compression: int8\n", .int8Blocks(blockSize: 256)),
            ("  download_compression: int8\n  download_compression_block_size: 64\n", .int8Blocks(blockSize: 64)),
            ("  download_compression: int8\n  secure_aggregation: true\n", .int8Blocks(blockSize: 256)),
        ])
    func downloadModes(yaml: String, encoding: UpdateEncoding) throws {
        let federation = try parse(yaml)
        #expect(federation.downloadCompression == encoding)
        #expect(federation.compression == .float32)  // the uploads' encoding is its own key
        #expect(federation.jobConfiguration(jobID: "j", sites: ["a", "b", "c"]).downloadEncoding == encoding)
    }

    @Test("The shipped pipeline's download_compression keys parse as documented")
    func shippedDownload() throws {
        let shipped = RobustAggregationConfigurationTests.shipped
        let example = shipped.replacingOccurrences(
            of: "  # download_compression: int8\n", with: "  download_compression: int8\n"
        ).replacingOccurrences(
            of: "  # download_compression_block_size: 256\n", with: "  download_compression_block_size: 256\n")
        #expect(example != shipped)
        #expect(try FederationConfiguration(yaml: example).downloadCompression == .int8Blocks(blockSize: 256))
    }
}
