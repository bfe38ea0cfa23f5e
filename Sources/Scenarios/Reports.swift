import Foundation
import Testbed

/// What a run writes for CI and people: JUnit XML, JSON, and a summary table.
public enum RunReport {
    // MARK: JUnit

    /// JUnit XML in the common schema (`testsuites` › `testsuite` › `testcase`
    /// › `failure`/`error`/`skipped`): one test case per scenario; a failure
    /// carries the failing step's message, the console's last lines and the
    /// artifacts folder.
    public static func junit(_ results: [ScenarioResult], suiteName: String = "scenarios", timestamp: Date = Date()) -> String {
        let failures = results.filter { $0.failure?.kind == .failure }.count
        let errors = results.filter { $0.failure?.kind == .error }.count
        let time = seconds(results.reduce(0) { $0 + $1.seconds })
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        xml += #"<testsuites name="testbed" tests="\#(results.count)" failures="\#(failures)" errors="\#(errors)" time="\#(time)">"# + "\n"
        xml += #"  <testsuite name="\#(escape(suiteName))" tests="\#(results.count)" failures="\#(failures)" errors="\#(errors)" skipped="0" time="\#(time)" timestamp="\#(iso8601(timestamp))">"# + "\n"
        for result in results {
            let classname = "scenarios." + Scenario.slug(URL(fileURLWithPath: result.file).deletingPathExtension().lastPathComponent)
            xml += #"    <testcase name="\#(escape(result.name))" classname="\#(escape(classname))" file="\#(escape(result.file))" time="\#(seconds(result.seconds))">"# + "\n"
            if let failure = result.failure {
                let element = failure.kind == .error ? "error" : "failure"
                let body = failure.message + ConsoleLog.failureBlocks(consoleTail: failure.consoleTail, artifacts: failure.artifacts)
                xml += #"      <\#(element) message="\#(escape(failure.summary))" type="\#(element == "error" ? "TestbedError" : "StepFailed")">\#(escape(body))</\#(element)>"# + "\n"
            }
            var out = result.steps.map { step in
                "\(step.status.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(String(format: "%7.2f", step.seconds)) s  \(step.index). \(step.label)"
            }
            out.append("artifacts: \(result.artifacts)")
            xml += "      <system-out>\(escape(out.joined(separator: "\n")))</system-out>\n"
            xml += "    </testcase>\n"
        }
        xml += "  </testsuite>\n</testsuites>\n"
        return xml
    }

    static func seconds(_ value: Double) -> String { String(format: "%.3f", value) }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func escape(_ text: String) -> String { XMLText.escape(text) }

    // MARK: JSON

    /// Every scenario, every step's timing and every boot report.
    public static func json(_ results: [ScenarioResult], startedAt: Date, seconds total: Double) -> String {
        func number(_ value: Double) -> OrderedJSON { .number((value * 1000).rounded() / 1000) }
        let scenarios: [OrderedJSON] = results.map { result in
            var fields: [(String, OrderedJSON)] = [
                ("name", .string(result.name)),
                ("file", .string(result.file)),
                ("status", .string(result.status.rawValue)),
                ("startedAt", .string(iso8601(result.startedAt))),
                ("seconds", number(result.seconds)),
                ("libvirtURI", .string(result.libvirtURI)),
                ("artifacts", .string(result.artifacts)),
            ]
            if let failure = result.failure {
                fields.append(("failure", .object([
                    ("kind", .string(failure.kind.rawValue)),
                    ("step", failure.step.map { .number(Double($0)) } ?? .null),
                    ("summary", .string(failure.summary)),
                    ("message", .string(failure.message)),
                    ("consoleTail", .array(failure.consoleTail.map(OrderedJSON.string))),
                    ("artifacts", failure.artifacts.map(OrderedJSON.string) ?? .null),
                ])))
            } else {
                fields.append(("failure", .null))
            }
            fields.append(("steps", .array(result.steps.map { step in
                .object([
                    ("index", .number(Double(step.index))),
                    ("label", .string(step.label)),
                    ("keyword", .string(step.keyword)),
                    ("machine", step.machine.map(OrderedJSON.string) ?? .null),
                    ("location", .string(step.location.description)),
                    ("status", .string(step.status.rawValue)),
                    ("startedAfterSeconds", number(step.startedAfter)),
                    ("seconds", number(step.seconds)),
                    ("message", step.message.map(OrderedJSON.string) ?? .null),
                ])
            })))
            fields.append(("bootReports", .array(result.bootReports.map(\.orderedJSON))))
            return .object(fields)
        }
        let passed = results.filter(\.passed).count
        return OrderedJSON.object([
            ("startedAt", .string(iso8601(startedAt))),
            ("seconds", number(total)),
            ("scenarios", .number(Double(results.count))),
            ("passed", .number(Double(passed))),
            ("failed", .number(Double(results.count - passed))),
            ("results", .array(scenarios)),
        ]).render(pretty: true) + "\n"
    }

    // MARK: Summary

    /// A table for people, then `N passed, N failed`.
    public static func summary(_ results: [ScenarioResult], seconds total: Double) -> String {
        let nameWidth = min(48, max(8, results.map(\.name.count).max() ?? 8))
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
        }
        var lines = [pad("scenario", nameWidth) + "  result  steps    time  boot→ready"]
        lines.append(String(repeating: "─", count: nameWidth + 38))
        for result in results {
            let passedSteps = result.steps.filter { $0.status == .passed }.count
            let ready = result.bootReports.first?["ready"].map { String(format: "%6.2f s", $0 / 1000) } ?? "       –"
            lines.append(pad(result.name, nameWidth) + "  " + pad(result.passed ? "pass" : "FAIL", 6)
                         + "  " + pad("\(passedSteps)/\(result.steps.count)", 5) + String(format: "%7.1f s", result.seconds) + "  " + ready)
        }
        let passed = results.filter(\.passed).count
        lines.append(String(repeating: "─", count: nameWidth + 38))
        for result in results where !result.passed {
            if let failure = result.failure {
                lines.append("✗ \(result.name) (\(result.file)): \(failure.summary)")
                if let artifacts = failure.artifacts { lines.append("  artifacts: \(artifacts)") }
            }
        }
        lines.append(String(format: "%d scenarios in %.1f s", results.count, total))
        lines.append("\(passed) passed, \(results.count - passed) failed")
        return lines.joined(separator: "\n") + "\n"
    }
}
