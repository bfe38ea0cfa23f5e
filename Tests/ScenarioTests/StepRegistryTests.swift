import Foundation
@testable import Scenarios
import Testing

@Suite("Step registry")
struct StepRegistryTests {
    /// The step table in scenarios/README.md: the lines from its header to the first line that is not a table row.
    static func readmeTable() throws -> [String] {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scenarios/README.md")
        let lines = try String(contentsOf: readme, encoding: .utf8).components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: "| step | what it does |") else { return [] }
        return Array(lines[start...].prefix { $0.hasPrefix("|") })
    }

    @Test("the README's step table is the registry's documentation")
    func readmeAgrees() throws {
        let documented = try Self.readmeTable()
        let rendered = StepRegistry.markdownTable.components(separatedBy: "\n")
        #expect(!documented.isEmpty, "no '| step | what it does |' table in scenarios/README.md")
        var diff: [String] = []
        for line in rendered where !documented.contains(line) { diff.append("+ \(line)") }
        for line in documented where !rendered.contains(line) { diff.append("- \(line)") }
        if diff.isEmpty, documented != rendered { diff.append("(same rows, different order)") }
        #expect(diff.isEmpty, "scenarios/README.md's step table disagrees with StepRegistry (+ registry, - README); paste StepRegistry.markdownTable:\n\(diff.joined(separator: "\n"))")
    }

    @Test("every keyword belongs to one step kind, and the keys each accepts are as before the registry")
    func keyTable() {
        let lifecycle: Set<String> = ["machine", "timeout", "name"]
        let expected: [String: Set<String>] = [
            "boot": lifecycle.union(["wait"]),
            "reboot": lifecycle,
            "shutdown": lifecycle,
            "crash": ["machine", "name"],
            "expect": lifecycle.union(["failure"]),
            "send": ["machine", "name"],
            "type": ["machine", "name"],
            "exec": lifecycle.union(["as", "status", "stdout", "stderr"]),
            "succeed": lifecycle.union(["as", "stdout", "stderr"]),
            "fail": lifecycle.union(["as", "status", "stdout", "stderr"]),
            "wait-until-succeeds": lifecycle.union(["as", "stdout"]),
            "install": lifecycle.union(["as"]),
            "file": lifecycle.union(["home", "on", "exists", "equals", "contains", "not-contains", "matches"]),
            "boot-phases": ["machine", "name"],
            "memory": ["machine", "name"],
            "traffic": ["machine", "name"],
            "sleep": ["name"],
            "fsck": ["machine", "name", "needs-recovery"],
            "service": lifecycle.union(["state", "listening", "restarts"]),
            "stop-service": lifecycle, "start-service": lifecycle, "restart-service": lifecycle,
            "kill-service": lifecycle.union(["signal"]),
            "http": lifecycle.union(["port", "headers", "body", "status", "response", "response-headers", "json"]),
            "link-down": ["machine", "name"], "link-up": ["machine", "name"],
        ]
        #expect(StepRegistry.keys == expected)
        #expect(StepRegistry.bareKeywords == ["boot", "reboot", "shutdown", "crash"])
        #expect(Set(StepRegistry.byKeyword.keys) == Set(expected.keys))
        #expect(StepRegistry.all.reduce(0) { $0 + $1.keys.count } == expected.count)
    }

    @Test("a parsed step is run by the kind that parsed it")
    func dispatch() throws {
        let scenario = try parse("""
            machines:
              web: {}
            steps:
              - boot
              - type: node
              - succeed: "true"
              - reboot
              - sleep: 1s
            """)
        let kinds = scenario.steps.map { String(describing: type(of: $0.action)) }
        #expect(kinds == ["BootStep", "SendStep", "ExecStep", "LifecycleStep", "SleepStep"])
    }
}
