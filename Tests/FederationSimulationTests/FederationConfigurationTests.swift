import FederationCore
import FederationJobs
import FederationSimulation
import Foundation
import Testing
import Training

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
        #expect(c.crossSiteEvaluation)
        #expect(
            try FederationConfiguration(yaml: "federation:\n  rounds: 2").crossSiteEvaluation == false, "off by default"
        )
    }

    @Test(
        "Unknown keys and bad values are named",
        arguments: [
            ("federation:\n  round: 3", "federation.round"),
            ("federation:\n  rounds: 0", "federation.rounds"),
            ("federation:\n  strategy: scaffold", "scaffold"),
            ("federation:\n  proximal_mu: -1", "proximal_mu"),
            ("federation:\n  cross_site_evaluation: sometimes", "cross_site_evaluation"),
            ("federation:\n  rounds: 1000000000", "federation.rounds"),
            ("federation:\n  rounds: .nan", "federation.rounds"),
            ("federation:\n  rounds: [3]", "federation.rounds"),
            ("federation:\n  min_clients: 0", "federation.min_clients"),
            ("federation:\n  local_epochs: 100000000", "federation.local_epochs"),
            ("federation:\n  round_timeout_seconds: 0", "federation.round_timeout_seconds"),
            ("federation:\n  grace_period_seconds: -1", "federation.grace_period_seconds"),
            (
                "federation:\n  round_timeout_seconds: 60\n  grace_period_seconds: 120",
                "federation.grace_period_seconds"
            ),
            ("federation:\n  max_round_retries: 1000000", "federation.max_round_retries"),
            ("federation:\n  proximal_mu: .nan", "federation.proximal_mu"),
            ("federation:\n  proximal_mu: .inf", "federation.proximal_mu"),
            ("federation:\n  server_learning_rate: 0", "federation.server_learning_rate"),
            ("federation:\n  server_learning_rate: .nan", "federation.server_learning_rate"),
            ("federation:\n  strategy: [fedavg]", "federation.strategy"),
            ("federation:\n  sites: [a, b, a]", "federation.sites[2]"),
            ("federation:\n  sites: [a, '']", "federation.sites[1]"),
            ("federation:\n  sites: [a, {b: 1}]", "federation.sites[1]"),
            ("federation:\n  sites: site-a", "federation.sites"),
            ("federation:\n  sites: [" + (0..<300).map { "s\($0)" }.joined(separator: ", ") + "]", "federation.sites"),
            ("federation: 3", "federation"),
            ("federation:\n  personalization: fedprox", "federation.personalization"),
            ("federation:\n  personalization: fedbn", "cross_site_evaluation: true"),
            ("federation:\n  fine_tune_epochs: 2", "cross_site_evaluation: true"),
            ("federation:\n  cross_site_evaluation: true\n  fine_tune_epochs: -1", "federation.fine_tune_epochs"),
            (
                "federation:\n  cross_site_evaluation: true\n  fine_tune_epochs: 100000000",
                "federation.fine_tune_epochs"
            ),
        ])
    func bad(yaml: String, words: String) {
        do {
            _ = try FederationConfiguration(yaml: yaml)
            Issue.record("accepted \(yaml)")
        } catch {
            #expect(error.message.contains(words), "\(error)")
        }
    }

    @Test("Strategy names map to the strategies; FedProx sends μ")
    func strategies() throws {
        var c = try FederationConfiguration(yaml: "federation:\n  strategy: fedprox\n  proximal_mu: 0.1")
        let prox = c.makeStrategy(learningRate: 0.01).configureTraining(round: 1, sites: ["a"])
        #expect(prox["a"]?["proximal_mu"] == .double(0.1))
        c.strategy = "cyclic"
        #expect(
            c.makeStrategy(learningRate: 0.01).configureTraining(round: 2, sites: ["a", "b"]).keys.sorted() == ["b"])
    }

    @Test("personalization and fine_tune_epochs: parsed, off by default, and sent to the sites with every task")
    func personalization() throws {
        let off = try FederationConfiguration(yaml: "federation:\n  rounds: 2")
        #expect(off.personalization == .none && off.fineTuneEpochs == 0)
        #expect(off.jobConfiguration(jobID: "j", sites: ["a"]).taskConfig["personalization"] == nil)
        let c = try FederationConfiguration(
            yaml: "federation:\n  cross_site_evaluation: true\n  personalization: fedbn\n  fine_tune_epochs: 3")
        #expect(c.personalization == .fedbn && c.fineTuneEpochs == 3)
        let config = c.jobConfiguration(jobID: "j", sites: ["a"]).taskConfig
        #expect(config["personalization"] == .string("fedbn") && config["fine_tune_epochs"] == .int(3))
        #expect(config["cross_site_evaluation"] == .bool(true))
        // FedBN needs layers to keep: a U-Net without model.norm has none.
        var unet = TrainingConfiguration().model
        #expect { try c.checkPersonalization(of: unet) } throws: { "\($0)".contains("model.norm: instance") }
        unet.normalization = .instance
        try c.checkPersonalization(of: unet)
    }

    @Test("The personalised models (the global model fine-tuned at each site) are a row of the cross-site tables")
    func personalizedRow() {
        let matrix = CrossSiteMatrix(
            jobID: "j", models: ["global"], sites: ["a", "b"],
            results: [
                "global": [
                    "a": ["dice": 0.8, "personalized_dice": 0.9], "b": ["dice": 0.6, "personalized_dice": 0.7],
                ]
            ])
        #expect(matrix.personalized(metric: "dice") == [0.9, 0.7])
        #expect(CrossSiteMatrix(jobID: "j", models: ["global"], sites: ["a"]).personalized(metric: "dice") == nil)
        let lines = StudyReportWriter.crossSiteTable(matrix).split(separator: "\n").map(String.init)
        #expect(lines[3].hasPrefix("personalised (global fine-tuned at each site)") && lines[3].hasSuffix("0.800"))
        let report = StudyReport(
            strategy: "fedavg", sites: ["a", "b"], rounds: [], comparison: [], crossSite: matrix, totalSeconds: 1)
        #expect(StudyReportWriter.html(report).contains("<td>personalised (global fine-tuned at each site)</td>"))
    }

    @Test("The report's CSV has one row per round and site")
    func csv() {
        let report = StudyReport(
            strategy: "fedavg", sites: ["a", "b"],
            rounds: [
                RoundSummary(
                    round: 1, participants: ["a"], closedBy: "deadline", siteScore: ["a": 0.5],
                    globalScore: ["a": 0.25, "b": 0.75], seconds: 2, epsilon: ["a": 1.25])
            ], comparison: [], totalSeconds: 3)
        #expect(
            StudyReportWriter.csv(report) == "round,site,participated,local_dice,global_dice,seconds,epsilon\n"
                + "1,a,true,0.5000,0.2500,2.0,1.25\n1,b,false,,0.7500,2.0,\n")
        #expect(report.epsilon == ["a": 1.25])
    }

    @Test("A classification study's report names ROC AUC in the CSV, the tables and the HTML, and reads the auc cells")
    func classificationReport() {
        let matrix = CrossSiteMatrix(
            jobID: "j", models: ["global"], sites: ["a", "b"],
            results: ["global": ["a": ["auc": 0.75, "dice": 0.1], "b": ["auc": 0.5]]], missing: [:])
        var report = StudyReport(
            strategy: "fedavg", sites: ["a", "b"],
            rounds: [
                RoundSummary(
                    round: 1, participants: ["a", "b"], closedBy: "every site answered", siteScore: ["a": 0.8],
                    globalScore: ["a": 0.7, "b": 0.6], seconds: 1)
            ],
            comparison: [
                ComparisonRow(model: "federated (fedavg)", kind: .federated, scores: ["a": 0.7, "b": 0.6], mean: 0.65)
            ],
            crossSite: matrix, totalSeconds: 2)
        report.metric = "auc"
        #expect(
            StudyReportWriter.csv(report).hasPrefix("round,site,participated,local_auc,global_auc,seconds,epsilon\n"))
        let table = StudyReportWriter.table(report).split(separator: "\n").map(String.init)
        #expect(table[0] == "ROC AUC on each site's held-out patients (a, b)")
        let cross = try? #require(
            table.firstIndex { $0.hasPrefix("Cross-site evaluation inside the federation: ROC AUC") })
        #expect(cross != nil)
        if let cross { #expect(table[cross + 2].contains("0.750") && table[cross + 2].hasSuffix("0.625")) }
        let html = StudyReportWriter.html(report)
        #expect(html.contains("Federated classification study") && html.contains("Global model: ROC AUC per site"))
        #expect(!html.contains("Dice"))
    }

    @Test(
        "The cross-site matrix in the terminal table and the HTML report: every cell, the means, what is missing and why"
    )
    func crossSiteReport() {
        let matrix = CrossSiteMatrix(
            jobID: "j", models: ["global", "a"], sites: ["a", "b"],
            results: ["global": ["a": ["dice": 0.9], "b": ["dice": 0.7]], "a": ["a": ["dice": 0.95]]],
            missing: ["b": "the site declined: policy", "a@b": "no answer within 60.0 seconds"])
        #expect(matrix.table(metric: "dice") == [[0.9, 0.7], [0.95, nil]])
        let report = StudyReport(
            strategy: "fedavg", sites: ["a", "b<script>"], rounds: [], comparison: [], crossSite: matrix,
            totalSeconds: 1)
        let table = StudyReportWriter.crossSiteTable(matrix)
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines[2].hasPrefix("global (federated)") && lines[2].contains("0.900") && lines[2].hasSuffix("0.800"))
        #expect(lines[3].hasPrefix("local model of a") && lines[3].contains("-") && lines[3].hasSuffix("0.950"))
        #expect(lines.contains("missing b: the site declined: policy"))
        let html = StudyReportWriter.html(report)
        #expect(
            html.contains("<td>local model of a</td>") && html.contains("0.950</td>") && html.contains("<td>–</td>"))
        #expect(html.contains("b&lt;script&gt;") && !html.contains("b<script>"), "names are escaped")
    }
}
