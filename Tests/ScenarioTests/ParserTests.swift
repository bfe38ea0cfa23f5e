import Foundation
@testable import Scenarios
import Testbed
import Testing

/// Parses `yaml` as `file.yaml`; files are not checked unless asked.
func parse(_ yaml: String, checkFiles: Bool = false, directory: URL = FileManager.default.temporaryDirectory) throws(ScenarioError) -> Scenario {
    try ScenarioParser(checkFiles: checkFiles, defaultImage: directory).parse(yaml: yaml, file: "file.yaml", directory: directory)
}

/// The error parsing `yaml` gives (a test failure when it parses).
func parseError(_ yaml: String, checkFiles: Bool = false, directory: URL = FileManager.default.temporaryDirectory,
                sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ScenarioError? {
    do {
        _ = try parse(yaml, checkFiles: checkFiles, directory: directory)
        Issue.record("expected an error, but the scenario parsed", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("Scenario files: parsing")
struct ParserTests {
    @Test("a full scenario: machines, homes, users, variables, every kind of step")
    func fullScenario() throws {
        let scenario = try parse("""
            name: everything
            description: all the parts
            timeout: 5m
            variables:
              user: alice
              greeting: hello ${user}
            registry: packages
            machines:
              web:
                memory: 512MiB
                vcpus: 2
                hostname: web
                kernel-parameters: ["nodeos.test.delay=agent:10"]
                capture: true
                users:
                  alice: {uid: 1000, password: s3cret, packages: [pad-lite]}
                homes:
                  alice:
                    size: 32
                    files:
                      notes/hi.txt: "${greeting}\\n"
                ignore-checks: [kernel-warning]
              db: {}
            steps:
              - boot: web
              - boot: db
                wait: console
              - expect: "login:"
                machine: db
                failure: [Kernel panic, {regex: "Oops: .*"}]
                timeout: 30s
              - type: node
                machine: db
              - succeed: cat notes/hi.txt
                machine: web
                as: ${user}
                stdout: hello alice
              - exec: node -e 'process.exit(3)'
                machine: web
                status: 3
                stderr: {not-contains: Error}
              - fail: cat /nope
                machine: web
                stderr: {contains: [ENOENT, nope], matches: "no such"}
              - wait-until-succeeds: ls /tmp/x
                machine: web
                timeout: 500ms
              - install: [pad-lite, ansi-mini]
                machine: web
                as: alice
              - file: notes/hi.txt
                machine: web
                home: alice
                on: host
                contains: hello
              - boot-phases: {ready: 20s, kernel: 1.5s}
                machine: web
              - memory: {guest-used: 100MiB, qemu-rss: 1GiB}
                machine: web
              - traffic: {only: registry, tarballs: 0, requests: {at-least: 1, at-most: 9}}
                machine: web
              - sleep: 2s
              - reboot: web
              - shutdown: web
              - crash: db
            """)
        #expect(scenario.name == "everything")
        #expect(scenario.timeout == .seconds(300))
        #expect(scenario.variables["greeting"] == "hello alice")
        #expect(scenario.registry?.lastPathComponent == "packages")
        #expect(scenario.machines.map(\.name) == ["web", "db"])
        let web = try #require(scenario.machine(named: "web"))
        #expect(web.memoryMiB == 512)
        #expect(web.vcpus == 2)
        #expect(web.capture)
        #expect(web.users == [.init(name: "alice", uid: 1000, password: "s3cret", packages: ["pad-lite"])])
        #expect(web.homes.first?.uid == 1000)
        #expect(web.homes.first?.sizeMiB == 32)
        #expect(web.homes.first?.files.first?.source == .text("hello alice\n"))
        #expect(web.ignoredChecks == ["kernel-warning"])
        #expect(scenario.steps.count == 17)
        #expect(scenario.steps.map(\.keyword) == ["boot", "boot", "expect", "send", "succeed", "exec", "fail", "wait-until-succeeds", "install",
                                                  "file", "boot-phases", "memory", "traffic", "sleep", "reboot", "shutdown", "crash"])
        #expect(scenario.steps[1].machine == "db")
        #expect(scenario.steps[13].machine == nil)
        #expect(scenario.steps[2].timeout == .seconds(30))
        #expect(scenario.steps[4].location == SourceLocation(file: "file.yaml", line: 34, column: 5))
        if let exec = scenario.steps[4].action as? ExecStep, exec.mode == .succeed {
            let (command, user, stdout) = (exec.command, exec.user, exec.stdout)
            #expect(command == "cat notes/hi.txt")
            #expect(user == "alice")
            #expect(stdout == [.equals("hello alice")])
        } else {
            Issue.record("step 5 is not a succeed step")
        }
        if let send = scenario.steps[3].action as? SendStep { #expect(send.text == "node\n") } else { Issue.record("step 4 is not a send") }
        if let waiting = scenario.steps[2].action as? ExpectStep {
            #expect(waiting.success == [.text("login:")])
            #expect(waiting.failure == [.text("Kernel panic"), .regex("Oops: .*")])
        }
        if let traffic = scenario.steps[12].action as? TrafficStep {
            #expect(traffic.only == .registry)
            #expect(traffic.tarballs == .init(atLeast: 0, atMost: 0))
            #expect(traffic.requests == .init(atLeast: 1, atMost: 9))
        } else {
            Issue.record("step 13 is not a traffic step")
        }
        if let boot = scenario.steps[1].action as? BootStep { #expect(!boot.waitForAgent) } else { Issue.record("step 2 is not a boot step") }
    }

    @Test("one machine: steps need not name it; bare words are steps; name labels a step")
    func defaults() throws {
        let scenario = try parse("""
            machines:
              solo:
            steps:
              - boot
              - succeed: node -v
                name: node runs
              - shutdown
            """)
        #expect(scenario.name == "file")
        #expect(scenario.steps.allSatisfy { $0.machine == "solo" })
        #expect(scenario.steps[1].label == "node runs")
        #expect(scenario.machines[0].memoryMiB == 256)
        #expect(scenario.registry == nil)
    }

    @Test("${registry} is left for the runner; $${ is a literal")
    func runtimeVariables() throws {
        let scenario = try parse("""
            registry: packages
            machines: {m: {}}
            steps:
              - succeed: echo ${registry} $${HOME}
            """)
        if let exec = scenario.steps[0].action as? ExecStep {
            #expect(exec.command == "echo ${registry} ${HOME}")
        } else {
            Issue.record("step 1 is not an exec step")
        }
    }

    @Test("fsck names a home the machine has")
    func fsck() throws {
        let scenario = try parse("machines:\n  m:\n    homes: {alice: {}}\nsteps:\n  - boot\n  - shutdown\n  - fsck: alice\n    needs-recovery: false\n")
        if let fsck = scenario.steps[2].action as? FsckStep {
            #expect(fsck.user == "alice")
            #expect(fsck.needsRecovery == false)
        } else {
            Issue.record("step 3 is not fsck")
        }
        let error = parseError("machines:\n  m:\n    homes: {alice: {}}\nsteps:\n  - fsck: bob\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 5, column: 11))
        #expect(error?.message.contains("no home volume for 'bob'") == true)
    }

    @Test("output matchers", arguments: [
        (OutputMatcher.equals("42"), "42\n", true),
        (.equals("42"), "420\n", false),
        (.contains("wor"), "hello world", true),
        (.notContains("boom"), "fine", true),
        (.matches("^v[0-9]+\\."), "v22.1.0\n", true),
        (.matches("^x"), "v22", false),
    ])
    func matchers(matcher: OutputMatcher, text: String, holds: Bool) {
        #expect(matcher.check(text) == holds)
    }
}

/// Bad input: every error names file:line:column and the field, and says what is wrong.
@Suite("Scenario files: bad input")
struct BadInputTests {
    @Test("malformed YAML: an unclosed quote")
    func malformedYAML() {
        let error = parseError("""
            machines:
              m: {}
            steps:
              - succeed: "unclosed
            """)
        #expect(error?.location.file == "file.yaml")
        #expect(error?.location.line == 4 || error?.location.line == 5)
        #expect(error?.message.hasPrefix("malformed YAML") == true)
    }

    @Test("malformed YAML: bad indentation")
    func badIndentation() {
        let error = parseError("machines:\n  m: {}\nsteps:\n  - boot\n - shutdown\n")
        #expect(error?.location.line == 5)
        #expect(error?.message.contains("malformed YAML") == true)
    }

    @Test("a key twice in one mapping")
    func duplicateKey() {
        let error = parseError("machines:\n  m: {}\n  m: {}\nsteps:\n  - boot\n")
        #expect(error?.message.contains("twice") == true)
        #expect(error?.message.contains("m") == true)
    }

    @Test("unknown step, with a suggestion")
    func unknownStep() {
        let error = parseError("""
            machines:
              m: {}
            steps:
              - boot
              - succed: node -v
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 5, column: 5))
        #expect(error?.field == "steps[2]")
        #expect(error?.message == "unknown step 'succed' (did you mean 'succeed'?)")
        #expect(error?.description.hasPrefix("file.yaml:5:5: steps[2]: unknown step") == true)
    }

    @Test("unknown bare-word step")
    func unknownBareStep() {
        let error = parseError("machines:\n  m: {}\nsteps:\n  - reboo\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 4, column: 5))
        #expect(error?.message.contains("unknown step 'reboo' (did you mean 'reboot'?)") == true)
    }

    @Test("unknown key in a machine")
    func unknownMachineKey() {
        let error = parseError("""
            machines:
              web:
                memroy: 256
            steps:
              - boot
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 3, column: 5))
        #expect(error?.field == "machines.web.memroy")
        #expect(error?.message.hasPrefix("unknown key 'memroy' (did you mean 'memory'?)") == true)
    }

    @Test("unknown key in a step")
    func unknownStepKey() {
        let error = parseError("""
            machines: {m: {}}
            steps:
              - succeed: ls
                stdot: x
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 4, column: 5))
        #expect(error?.field == "steps[1].stdot")
        #expect(error?.message.contains("unknown key 'stdot' in a 'succeed' step (did you mean 'stdout'?)") == true)
    }

    @Test("unknown top-level key")
    func unknownTopKey() {
        let error = parseError("machines: {m: {}}\nstep:\n  - boot\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 2, column: 1))
        #expect(error?.message.contains("did you mean 'steps'?") == true)
    }

    @Test("wrong type: a list where a size goes")
    func wrongType() {
        let error = parseError("""
            machines:
              m:
                memory: [256]
            steps:
              - boot
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 3, column: 13))
        #expect(error?.field == "machines.m.memory")
        #expect(error?.message == "expected text, found a list")
    }

    @Test("wrong type: text where a number goes")
    func wrongNumber() {
        let error = parseError("machines:\n  m:\n    vcpus: two\nsteps:\n  - boot\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 3, column: 12))
        #expect(error?.field == "machines.m.vcpus")
        #expect(error?.message.contains("expected a whole number") == true)
    }

    @Test("wrong type: steps is not a list")
    func stepsNotAList() {
        let error = parseError("machines: {m: {}}\nsteps: boot\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 2, column: 8))
        #expect(error?.message.contains("expected a list of steps") == true)
    }

    @Test("missing file: the image")
    func missingImage() throws {
        let error = parseError("machines:\n  m:\n    image: no/such/image\nsteps:\n  - boot\n", checkFiles: true)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 3, column: 12))
        #expect(error?.field == "machines.m.image")
        #expect(error?.message.contains("does not exist") == true)
        #expect(error?.message.contains("no/such/image/manifest.json") == true)
    }

    @Test("missing file: a file to copy into a home")
    func missingHomeFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scenario-tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("image"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("{}".utf8).write(to: directory.appendingPathComponent("image/manifest.json"))
        let error = parseError("""
            machines:
              m:
                image: image
                homes:
                  alice:
                    files:
                      data.bin: {from: fixtures/data.bin}
            steps:
              - boot
            """, checkFiles: true, directory: directory)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 7, column: 28))
        #expect(error?.field == "machines.m.homes.alice.files.data.bin.from")
        #expect(error?.message.contains("the file to copy into the home does not exist") == true)
    }

    @Test("missing file: the scenario itself")
    func missingScenarioFile() {
        #expect(throws: ScenarioError.self) {
            try ScenarioParser().parse(file: URL(fileURLWithPath: "/no/such/scenario.yaml"), displayPath: "x.yaml")
        }
    }

    @Test("undefined variable")
    func undefinedVariable() {
        let error = parseError("""
            variables:
              user: alice
            machines: {m: {}}
            steps:
              - succeed: cat /home/${usr}/x
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 5, column: 14))
        #expect(error?.field == "steps[1].succeed")
        #expect(error?.message.contains("undefined variable '${usr}' (did you mean 'user'?)") == true)
    }

    @Test("unknown machine")
    func unknownMachine() {
        let error = parseError("""
            machines:
              web: {}
              db: {}
            steps:
              - boot: wbe
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 5, column: 11))
        #expect(error?.field == "steps[1].boot")
        #expect(error?.message.contains("unknown machine 'wbe' (did you mean 'web'?)") == true)
    }

    @Test("several machines: a step must name one")
    func ambiguousMachine() {
        let error = parseError("machines:\n  web: {}\n  db: {}\nsteps:\n  - succeed: ls\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 5, column: 5))
        #expect(error?.message.contains("say which with 'machine: NAME'") == true)
    }

    @Test("bad duration")
    func badDuration() {
        let error = parseError("""
            machines: {m: {}}
            steps:
              - boot:
                timeout: 10 parsecs
            """)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 4, column: 14))
        #expect(error?.field == "steps[1].timeout")
        #expect(error?.message.contains("'10 parsecs' is not a duration") == true)
    }

    @Test("bad size")
    func badSize() {
        let error = parseError("machines:\n  m:\n    memory: lots\nsteps:\n  - boot\n")
        #expect(error?.field == "machines.m.memory")
        #expect(error?.message.contains("is not a size") == true)
    }

    @Test("one step, two actions")
    func twoActions() {
        let error = parseError("machines: {m: {}}\nsteps:\n  - succeed: ls\n    send: x\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 4, column: 5))
        #expect(error?.message.contains("found both 'succeed' and 'send'") == true)
    }

    @Test("a user the machine does not have")
    func unknownUser() {
        let error = parseError("machines:\n  m:\n    homes: {alice: {}}\nsteps:\n  - succeed: ls\n    as: bob\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 6, column: 9))
        #expect(error?.message.contains("no user 'bob'") == true)
    }

    @Test("checking traffic needs a capture")
    func trafficWithoutCapture() {
        let error = parseError("registry: packages\nmachines: {m: {}}\nsteps:\n  - traffic: {only: registry}\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: 4, column: 21))
        #expect(error?.message.contains("needs 'capture: true'") == true)
    }

    @Test("an unknown boot phase and an invalid regular expression")
    func badPhaseAndRegex() {
        let phase = parseError("machines: {m: {}}\nsteps:\n  - boot-phases: {redy: 5s}\n")
        #expect(phase?.location == SourceLocation(file: "file.yaml", line: 3, column: 19))
        #expect(phase?.message.contains("did you mean 'ready'?") == true)
        let regex = parseError("machines: {m: {}}\nsteps:\n  - succeed: ls\n    stdout: {matches: \"(unclosed\"}\n")
        #expect(regex?.field == "steps[1].stdout.matches")
        #expect(regex?.message.contains("not a valid regular expression") == true)
    }

    @Test("no steps, empty file")
    func noSteps() {
        #expect(parseError("machines: {m: {}}\n")?.message.contains("a scenario needs 'steps'") == true)
        #expect(parseError("")?.message.contains("empty") == true)
        #expect(parseError("machines: {m: {}}\nsteps: []\n")?.message.contains("empty") == true)
    }
}

/// The scenarios this repository ships stay valid (parsed with their real
/// folder, files not required: CI may not have built the image yet).
@Suite("Shipped scenarios parse")
struct ShippedScenarioTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scenarios")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("every shipped scenario parses", arguments: files)
    func parses(file: String) throws {
        let scenario = try ScenarioParser(checkFiles: false).parse(file: Self.folder.appendingPathComponent(file), displayPath: "scenarios/\(file)")
        #expect(!scenario.steps.isEmpty)
        #expect(!scenario.machines.isEmpty)
    }

    @Test("the issue's seven scenarios are there")
    func allThere() {
        for name in ["boot-to-ready", "homes-persist", "user-isolation", "ephemeral-root", "npm-install", "clean-shutdown", "smoke-test"] {
            #expect(Self.files.contains("\(name).yaml"), "missing scenarios/\(name).yaml")
        }
    }
}
