import Foundation
import Testbed

/// `install`: `npm install --global` as a user, against the scenario's registry.
enum InstallStep: StepKind {
    static let keys: [String: Set<String>] = ["install": lifecycleModifiers.union(["as"])]
    static let documentation = [
        StepDocumentation(usage: "`install: PACKAGE` or a list, `as: USER`",
                          meaning: "`npm install --global` as that user against the scenario's registry; the packages land in the user's home"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        let packages = try reader.stringList(input.value)
        guard !packages.isEmpty else { throw reader.error(input.value, "name at least one package") }
        guard let user = input.user else {
            throw reader.error(at: input.keyNode, input.step.path, "say who installs: 'as: USER' (npm install -g puts packages in that user's home)")
        }
        return (.install(packages: packages, user: user), "install \(packages.joined(separator: " ")) as \(user)")
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .install(let packages, let user) = step.action else { Step.Action.mismatch("install", step.action) }
        let machine = try await execution.running(step)
        let argv = ["npm", "install", "--global"] + packages.map(execution.expand)
        let result = try await machine.execute(argv, user: execution.user(user), timeout: step.timeout ?? .seconds(600))
        guard result.succeeded else {
            throw StepFailure(summary: "npm install -g \(packages.joined(separator: " ")) as \(user) failed: \(result)",
                              details: "--- stdout ---\n\(result.stdout)\n--- stderr ---\n\(result.stderr)", machine: machine)
        }
    }
}
