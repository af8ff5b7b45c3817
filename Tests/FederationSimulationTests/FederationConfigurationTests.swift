import FederationCore
import FederationSimulation
import Foundation
import Testing

@Suite("Federation section of the pipeline YAML, and the study report")
struct FederationConfigurationTests {
    @Test("The shipped pipeline's federation section parses")
    func shipped() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let text = try String(contentsOfFile: url.path + "/pipelines/segmentation-unet2d.yaml", encoding: .utf8)
        let c = try FederationConfiguration(yaml: text)
        #expect(c.rounds == 5 && c.localEpochs == 1 && c.minClients == 2 && c.strategy == "fedavg")
        #expect(c.sites == ["community-hospital", "research-center", "treatment-center"])
    }

    @Test("Unknown keys and bad values are named", arguments: [
        ("federation:\n  round: 3", "federation.round"),
        ("federation:\n  rounds: 0", "federation.rounds"),
        ("federation:\n  strategy: scaffold", "scaffold"),
        ("federation:\n  proximal_mu: -1", "proximal_mu"),
    ])
    func bad(yaml: String, words: String) {
        do { _ = try FederationConfiguration(yaml: yaml); Issue.record("accepted \(yaml)") } catch {
            #expect(error.message.contains(words), "\(error)")
        }
    }

    @Test("Strategy names map to the strategies; FedProx sends μ")
    func strategies() throws {
        var c = try FederationConfiguration(yaml: "federation:\n  strategy: fedprox\n  proximal_mu: 0.1")
        let prox = c.makeStrategy(learningRate: 0.01).configureTraining(round: 1, sites: ["a"])
        #expect(prox["a"]?["proximal_mu"] == .double(0.1))
        c.strategy = "cyclic"
        #expect(c.makeStrategy(learningRate: 0.01).configureTraining(round: 2, sites: ["a", "b"]).keys.sorted() == ["b"])
    }

    @Test("The report's CSV has one row per round and site")
    func csv() {
        let report = StudyReport(strategy: "fedavg", sites: ["a", "b"], rounds: [
            RoundSummary(round: 1, participants: ["a"], closedBy: "deadline", siteDice: ["a": 0.5], globalDice: ["a": 0.25, "b": 0.75], seconds: 2),
        ], comparison: [], totalSeconds: 3)
        #expect(StudyReportWriter.csv(report) == "round,site,participated,local_dice,global_dice,seconds\n1,a,true,0.5000,0.2500,2.0\n1,b,false,,0.7500,2.0\n")
    }
}
