import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Scenarios
@testable import Testbed
import Testing

/// Results as a run would give them: one pass, one failure with a console tail
/// full of control characters, one testbed error.
func sampleResults() -> [ScenarioResult] {
    let location = SourceLocation(file: "scenarios/a.yaml", line: 3, column: 5)
    let report = BootReport(
        machine: "a-web", phases: [("hostStart", 0), ("kernel", 812.5), ("ready", 3020.25)], guestPhases: [("kernel", 301.2)],
        memory: MemoryReport(guestTotalKiB: 240_000, guestAvailableKiB: 180_000, initRssKiB: 40_000, qemuRssKiB: 200_000),
        accelerator: .tcg, imageHash: "abc", kernelVersion: "6.1.0", nodeVersion: "v22.0.0", bootID: "b00t", libvirtURI: "qemu:///embed?root=/tmp/x",
        startedAt: "2026-11-28T19:00:00Z", artifacts: "/tmp/artifacts/a-web", problems: [], processToHostStartMs: nil)
    let passed = ScenarioResult(
        name: "boots & \"reports\"", file: "scenarios/a.yaml", status: .passed, seconds: 6.5, startedAt: Date(timeIntervalSince1970: 0),
        steps: [
            StepResult(index: 1, label: "boot", keyword: "boot", machine: "web", location: location, status: .passed, startedAfter: 0, seconds: 3.4, message: nil),
            StepResult(index: 2, label: "boot phases: ready ≤ 20 s", keyword: "boot-phases", machine: "web", location: location, status: .passed, startedAfter: 3.4, seconds: 0, message: nil),
        ],
        failure: nil, bootReports: [report], artifacts: "/tmp/artifacts/a", libvirtURI: "qemu:///embed?root=/tmp/x")
    let failed = ScenarioResult(
        name: "fails <here>", file: "scenarios/b.yaml", status: .failed, seconds: 2, startedAt: Date(timeIntervalSince1970: 10),
        steps: [
            StepResult(index: 1, label: "succeed 'false'", keyword: "succeed", machine: "m", location: location, status: .failed, startedAfter: 0, seconds: 0.5,
                       message: "'false' failed: status 1"),
            StepResult(index: 2, label: "shutdown", keyword: "shutdown", machine: "m", location: location, status: .skipped, startedAfter: 0.5, seconds: 0, message: nil),
        ],
        failure: ScenarioFailure(kind: .failure, step: 1, summary: "step 1 (succeed 'false'): 'false' failed: status 1", message: "'false' failed: status 1\n--- stderr ---\n",
                                 consoleTail: ["root@nodeos:/root# \u{1b}[0m", "bell \u{07} & <tag>"], artifacts: "/tmp/artifacts/b-m"),
        bootReports: [], artifacts: "/tmp/artifacts/b", libvirtURI: "qemu:///embed?root=/tmp/x")
    let broken = ScenarioResult(
        name: "cannot start", file: "scenarios/c.yaml", status: .failed, seconds: 0.1, startedAt: Date(timeIntervalSince1970: 20), steps: [],
        failure: ScenarioFailure(kind: .error, step: nil, summary: "setting up: no image", message: "no image", consoleTail: [], artifacts: nil),
        bootReports: [], artifacts: "/tmp/artifacts/c", libvirtURI: "qemu:///embed?root=/tmp/x")
    return [passed, failed, broken]
}

/// Checks a document against the common JUnit schema (the one Jenkins,
/// GitLab and most CI read): `testsuites` › `testsuite(name, tests, failures,
/// errors, time)` › `testcase(name, classname, time)` › at most one of
/// `failure(message)`, `error(message)`, `skipped`; counts agree.
/// Returns the problems found.
func junitSchemaProblems(_ xml: String) -> [String] {
    let document: XMLDocument
    do {
        document = try XMLDocument(xmlString: xml, options: [])
    } catch {
        return ["not well-formed XML: \(error)"]
    }
    var problems: [String] = []
    guard let root = document.rootElement(), root.name == "testsuites" else { return ["the root element is not <testsuites>"] }
    func attribute(_ element: XMLElement, _ name: String) -> String? { element.attribute(forName: name)?.stringValue }
    func requireNumber(_ element: XMLElement, _ name: String, integer: Bool) {
        guard let text = attribute(element, name) else { problems.append("<\(element.name ?? "?")> lacks '\(name)'"); return }
        if integer ? Int(text) == nil : Double(text) == nil { problems.append("<\(element.name ?? "?")> \(name)='\(text)' is not a number") }
    }
    let allowedInSuite: Set<String> = ["testcase", "properties", "system-out", "system-err"]
    let allowedInCase: Set<String> = ["failure", "error", "skipped", "system-out", "system-err", "properties"]
    var totalTests = 0
    for suite in root.elements(forName: "testsuite") {
        if attribute(suite, "name") == nil { problems.append("<testsuite> lacks 'name'") }
        for name in ["tests", "failures", "errors"] { requireNumber(suite, name, integer: true) }
        requireNumber(suite, "time", integer: false)
        var failures = 0, errors = 0
        let cases = suite.elements(forName: "testcase")
        for child in suite.children ?? [] where child.kind == .element && !allowedInSuite.contains(child.name ?? "") {
            problems.append("<testsuite> may not hold <\(child.name ?? "?")>")
        }
        for testcase in cases {
            for name in ["name", "classname"] where attribute(testcase, name) == nil { problems.append("<testcase> lacks '\(name)'") }
            requireNumber(testcase, "time", integer: false)
            var outcomes = 0
            for child in testcase.children ?? [] where child.kind == .element {
                guard let name = child.name, allowedInCase.contains(name) else {
                    problems.append("<testcase> may not hold <\(child.name ?? "?")>")
                    continue
                }
                if ["failure", "error", "skipped"].contains(name) { outcomes += 1 }
                if name == "failure" || name == "error" {
                    if attribute(child as! XMLElement, "message") == nil { problems.append("<\(name)> lacks 'message'") }
                    if name == "failure" { failures += 1 } else { errors += 1 }
                }
            }
            if outcomes > 1 { problems.append("<testcase> has more than one failure/error/skipped") }
        }
        if Int(attribute(suite, "tests") ?? "") != cases.count { problems.append("tests='\(attribute(suite, "tests") ?? "")' but \(cases.count) test cases") }
        if Int(attribute(suite, "failures") ?? "") != failures { problems.append("failures count does not match") }
        if Int(attribute(suite, "errors") ?? "") != errors { problems.append("errors count does not match") }
        totalTests += cases.count
    }
    if let tests = attribute(root, "tests"), Int(tests) != totalTests { problems.append("<testsuites tests> does not match") }
    return problems
}

@Suite("Reports: JUnit, JSON, summary")
struct ReportTests {
    @Test("JUnit is well-formed and follows the common schema")
    func junitSchema() throws {
        let xml = RunReport.junit(sampleResults(), timestamp: Date(timeIntervalSince1970: 0))
        #expect(junitSchemaProblems(xml) == [])
        #expect(xml.contains(#"<testsuites name="testbed" tests="3" failures="1" errors="1""#))
    }

    @Test("the failing test case carries the step's message, the console tail and the artifacts")
    func junitFailure() throws {
        let xml = RunReport.junit(sampleResults())
        let document = try XMLDocument(xmlString: xml, options: [])
        let cases = try document.nodes(forXPath: "//testcase") as! [XMLElement]
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue } == ["boots & \"reports\"", "fails <here>", "cannot start"])
        #expect(cases[0].elements(forName: "failure").isEmpty)
        let failure = try #require(cases[1].elements(forName: "failure").first)
        #expect(failure.attribute(forName: "message")?.stringValue == "step 1 (succeed 'false'): 'false' failed: status 1")
        let body = failure.stringValue ?? ""
        #expect(body.contains("--- last 2 console lines ---"))
        #expect(body.contains("bell  & <tag>")) // the BEL character is dropped, XML 1.0 forbids it
        #expect(body.contains("--- artifacts: /tmp/artifacts/b-m"))
        #expect(cases[2].elements(forName: "error").first?.attribute(forName: "message")?.stringValue == "setting up: no image")
        #expect(cases[0].attribute(forName: "classname")?.stringValue == "scenarios.a")
    }

    @Test("the schema check itself catches broken documents")
    func schemaCheckCatches() {
        #expect(!junitSchemaProblems("<testsuites><testsuite name='x' tests='1' failures='0' errors='0' time='1'><testcase name='a'/></testsuite></testsuites>").isEmpty)
        #expect(!junitSchemaProblems("<testsuites><testsuite").isEmpty)
        #expect(!junitSchemaProblems("<testsuites tests='2'><testsuite name='x' tests='1' failures='1' errors='0' time='1'><testcase name='a' classname='b' time='1'><failure/></testcase></testsuite></testsuites>").isEmpty)
    }

    @Test("JSON holds every step's timing and every boot report")
    func json() throws {
        let text = RunReport.json(sampleResults(), startedAt: Date(timeIntervalSince1970: 0), seconds: 8.6)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["passed"] as? Int == 1)
        #expect(object["failed"] as? Int == 2)
        let results = try #require(object["results"] as? [[String: Any]])
        #expect(results.count == 3)
        let steps = try #require(results[0]["steps"] as? [[String: Any]])
        #expect(steps.map { $0["seconds"] as? Double } == [3.4, 0])
        #expect(steps[1]["startedAfterSeconds"] as? Double == 3.4)
        #expect(steps[0]["location"] as? String == "scenarios/a.yaml:3:5")
        let reports = try #require(results[0]["bootReports"] as? [[String: Any]])
        let phases = try #require(reports.first?["phases"] as? [String: Any])
        #expect(phases["ready"] as? Double == 3020.25)
        #expect((reports.first?["memory"] as? [String: Any])?["guestUsedKiB"] as? Int == 60_000)
        let failure = try #require(results[1]["failure"] as? [String: Any])
        #expect(failure["step"] as? Int == 1)
        #expect((failure["consoleTail"] as? [String])?.count == 2)
        #expect((results[1]["steps"] as? [[String: Any]])?.last?["status"] as? String == "skipped")
    }

    @Test("the summary has a row per scenario and the closing count")
    func summary() {
        let text = RunReport.summary(sampleResults(), seconds: 8.6)
        #expect(text.contains("boots & \"reports\""))
        #expect(text.contains("FAIL"))
        #expect(text.hasSuffix("1 passed, 2 failed\n"))
        #expect(text.contains("artifacts: /tmp/artifacts/b-m"))
    }
}
