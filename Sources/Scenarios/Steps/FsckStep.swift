import Foundation
import Testbed

/// `fsck`: a stopped machine's home volume passes `e2fsck -fn` on the host.
struct FsckStep: StepKind {
    var user: String
    /// With it set, whether the journal must still need replaying.
    var needsRecovery: Bool?
    var keyword: String { "fsck" }

    static let keys: [String: Set<String>] = ["fsck": ["machine", "name", "needs-recovery"]]
    static let documentation = [
        StepDocumentation(usage: "`fsck: USER`",
                          meaning: "once the machine stopped: USER's home volume passes `e2fsck -fn` (after replaying its journal on a copy); `needs-recovery: false` also requires that nothing was left in the journal (a clean unmount)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: FsckStep, described: String?) {
        let home = try reader.string(input.value)
        if let machine = input.machine, let definition = input.definition, !definition.homes.contains(where: { $0.user == home }) {
            throw reader.error(input.value, "machine '\(machine)' has no home volume for '\(home)' (homes: \(definition.homes.map(\.user).joined(separator: ", ")))")
        }
        let recovery = try input.keys["needs-recovery"].map { try reader.bool($0) }
        return (FsckStep(user: home, needsRecovery: recovery),
                "fsck \(home)'s home\(recovery == false ? ", nothing left in the journal" : recovery == true ? ", journal to replay" : "")")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let state = try execution.state(step)
        if let machine = state.current, !(await machine.isStopped) {
            throw StepFailure(summary: "machine '\(state.definition.name)' is running: shut it down (or crash it) before checking \(user)'s volume", machine: machine)
        }
        guard let volume = state.homes[user] else { throw StepFailure(summary: "no home volume for \(user)", kind: .error) }
        let (recovery, check) = try await Task.detached { (try volume.needsRecovery(), try volume.check()) }.value
        if let needsRecovery, recovery != needsRecovery {
            throw StepFailure(summary: "\(user)'s volume \(recovery ? "still has a journal to replay (it was not unmounted cleanly)" : "has nothing in its journal to replay")",
                              details: "volume: \(volume.path.path)", machine: state.current)
        }
        guard check.clean else {
            throw StepFailure(summary: "e2fsck found problems on \(user)'s volume", details: check.output, machine: state.current)
        }
    }
}
