import ArgumentParser
import Foundation
import Provisioning

struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the project CA, certificates and one startup kit per participant.",
        discussion: """
            Reads a project file (see pipelines/project.yaml) and writes <output>/ca/ (the CA; keep ca-key.pem \
            secret) and <output>/<participant>/ (a kit: ca.pem, cert.pem, key.pem, kit.yaml, README.txt). Run it \
            again with the same output after adding a site: only the new kit is issued, existing kits stay \
            byte-identical. A participant removed from the file keeps its kit folder.
            """)

    @Argument(help: "Project file (see pipelines/project.yaml).")
    var project: String

    @Option(name: .shortAndLong, help: "Folder for the CA and the startup kits.")
    var output: String

    func validate() throws {
        guard FileManager.default.fileExists(atPath: project) else {
            throw ValidationError("project file '\(project)' does not exist (example: pipelines/project.yaml)")
        }
    }

    func run() throws {
        do {
            let project = try Project.load(path: self.project)
            let report = try Provisioner(project: project, output: output).run()
            print(report)
        } catch {
            throw CommandFailure(description: error.description)
        }
    }
}
