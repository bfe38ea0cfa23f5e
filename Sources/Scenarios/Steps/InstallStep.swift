import Foundation
import Testbed

/// `install`: `npm install --global` as a user, against the scenario's registry.
struct InstallStep: StepKind {
    var packages: [String]
    var user: String
    var keyword: String { "install" }
    var needsRegistry: Bool { true }

    static let keys: [String: Set<String>] = ["install": lifecycleModifiers.union(["as"])]
    static let documentation = [
        StepDocumentation(usage: "`install: PACKAGE` or a list, `as: USER`",
                          meaning: "`npm install --global` as that user against the scenario's registry; the packages land in the user's home"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: InstallStep, described: String?) {
        let packages = try reader.stringList(input.value)
        guard !packages.isEmpty else { throw reader.error(input.value, "name at least one package") }
        guard let user = input.user else {
            throw reader.error(at: input.keyNode, input.step.path, "say who installs: 'as: USER' (npm install -g puts packages in that user's home)")
        }
        return (InstallStep(packages: packages, user: user), "install \(packages.joined(separator: " ")) as \(user)")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let argv = ["npm", "install", "--global"] + packages.map(execution.expand)
        let result = try await machine.execute(argv, user: execution.user(user), timeout: step.timeout ?? .seconds(600))
        guard result.succeeded else {
            throw StepFailure(summary: "npm install -g \(packages.joined(separator: " ")) as \(user) failed: \(result)",
                              details: result.transcript, machine: machine)
        }
    }
}
