import FederationCore
import FederationGRPC
import Foundation
import SafeTensorsFormat
import Testing

/// The model a study lead downloads from a real deployment is usable as it is: `tessera predict` rebuilds it from
/// the file's own metadata (architecture, channels, segments, preprocessing), with no pipeline on the command line.
@Suite("Downloaded models over real processes", .serialized)
struct ModelDownloadProcessTests {
    @Test(
        "A federated job's global model, downloaded over the admin API, segments a series with `tessera predict`",
        .timeLimit(.minutes(10)))
    func downloadedModelPredicts() async throws {
        let cluster = try ProcessCluster()
        try await cluster.startServer()
        let admin = try cluster.admin()
        let sites = Array(ProcessCluster.sites.prefix(2))
        let job = try await admin.submit(
            pipeline: try cluster.pipeline(rounds: 1, minClients: 2, sites: sites, crossSite: true),
            name: "download")
        let events = try await cluster.events(admin, job: job) { event in
            if case .roundStarted(1, 0, _) = event { for site in sites { try cluster.startClient(site) } }
            return false
        }
        #expect(events.last == .jobFinished, "\(events.suffix(3))")
        let folder = cluster.path("download-\(job)")
        let files = try await admin.download(jobID: job, to: folder)
        #expect(files.contains { $0.hasSuffix("global.safetensors") }, "\(files)")

        // Every model file the server wrote names the architecture and the preprocessing, beside its own keys.
        let global = try SafeTensorsFile.read(contentsOf: folder + "/global.safetensors").metadata
        let round = try SafeTensorsFile.read(contentsOf: cluster.path("state") + "/\(job)/round-0001.safetensors")
            .metadata
        let local = try SafeTensorsFile.read(
            contentsOf: cluster.path("state") + "/\(job)/cross-site/local-\(sites[0]).safetensors"
        ).metadata
        for (name, meta) in [("global", global), ("round 1", round), ("local", local)] {
            #expect(meta["architecture"] == "unet2d", "\(name): \(meta)")
            #expect(meta["encoder_channels"] == "4,8" && meta["bottleneck_channels"] == "8", "\(name)")
            #expect(meta["segments"] == "1", "\(name)")
            #expect(meta["preprocessing"]?.contains("soft_tissue") == true, "\(name): \(meta)")
            #expect(meta["job"] == job, "\(name)")
        }
        #expect(global["round"] == "1" && round["round"] == "1" && local["site"] == sites[0])

        // The downloaded file alone (no --pipeline) segments a series the job never saw.
        let series = ProcessCluster.repository.path + "/sample-data/research-center/sub-001/ct"
        let output = cluster.path("prediction.nii.gz")
        let predict = Process()
        predict.executableURL = URL(fileURLWithPath: cluster.binary)
        predict.arguments = ["predict", "--model", folder + "/global.safetensors", series, "--output", output]
        let out = Pipe()
        predict.standardOutput = out
        predict.standardError = out
        try predict.run()
        let text = try await within(.seconds(120), "tessera predict") {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            predict.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        #expect(predict.terminationStatus == 0, "\(text)")
        #expect(text.contains("wrote \(output): segment 1:"), "\(text)")
        let written = try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int ?? 0
        #expect(written > 100)
        for site in sites {
            #expect(try await cluster.waitForClient(site) == 0, "\(site): \(cluster.logText(site))")
        }
    }
}
