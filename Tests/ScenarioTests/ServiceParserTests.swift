import Foundation
@testable import Scenarios
import Testbed
import Testing

@Suite("Scenario files: services, forwards and http")
struct ServiceParserTests {
    static let machine = """
        machines:
          web:
            homes: {alice: {uid: 1000}}
            services:
              app:
                user: alice
                command: webapp --verbose
                env: {PORT: "8080"}
                restart: always
            forward: {8080: 0}
        """

    @Test("services go into the boot configuration; http steps give their machine the tunnel")
    func parsed() throws {
        let scenario = try parse(Self.machine + """

            steps:
              - boot
              - service: app
                listening: 8080
              - http: POST /echo
                body: hi
                status: 200
                json: {ok: true}
              - kill-service: app
                signal: term
            """)
        let web = try #require(scenario.machines.first)
        #expect(web.services == [BootConfig.Service(name: "app", user: "alice", argv: ["webapp", "--verbose"], env: ["PORT": "8080"], restart: "always")])
        #expect(web.forwards == [.init(guestPort: 8080, hostPort: 0)])
        #expect(web.tunnel)
        let http = try #require(scenario.steps[2].action as? HTTPStep)
        #expect(http.request.method == "POST" && http.request.body == Array("hi".utf8) && http.port == 8080 && http.status == 200)
        #expect((scenario.steps[3].action as? ServiceControlStep)?.signal == "SIGTERM")
    }

    @Test("an unknown service, a port out of range, a bad policy and a bad request line name their place", arguments: [
        ("  - service: ap\n", 13, 14, "machine 'web' has no service 'ap' (did you mean 'app'?)"),
        ("  - http: GET /\n    port: 70000\n", 14, 11, "a port is 1–65535, not 70000"),
        ("  - http: FETCH /\n    port: 8080\n", 13, 11, "write 'METHOD /path'"),
        ("  - service: app\n    state: sleeping\n", 14, 12, "'running', 'stopped', 'exited' or 'crash-loop', not 'sleeping'"),
    ])
    func badSteps(step: String, line: Int, column: Int, message: String) {
        let error = parseError(Self.machine + "\nsteps:\n  - boot\n" + step)
        #expect(error?.location == SourceLocation(file: "file.yaml", line: line, column: column))
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }

    @Test("bad services and forwards on a machine", arguments: [
        ("    services: {app: {user: carol, command: x}}\n", "no user 'carol' on this machine"),
        ("    services: {app: {command: x, restart: sometimes}}\n", "'always', 'on-failure' or 'never', not 'sometimes'"),
        ("    services: {app: {user: root}}\n", "say what service 'app' runs"),
        ("    services: {App: {command: x}}\n", "a service name is lower-case letters"),
        ("    forward: [0]\n", "a port is 1–65535, not 0"),
        ("    forward: {http: 80}\n", "a guest port is 1–65535, not 'http'"),
        ("    egress: closed\n", "'offered' (the default: only the registry and forwarded ports"),
    ])
    func badMachine(line: String, message: String) {
        let error = parseError("machines:\n  web:\n" + line + "steps:\n  - boot\n")
        #expect(error?.location.file == "file.yaml")
        #expect((error?.location.line ?? 0) == 3)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }
}

@Suite("Scenario files: networks")
struct NetworkParserTests {
    static let machines = "machines:\n  a: {}\n  b: {}\n  c: {}\n"

    @Test("a network joins two machines: addresses, MACs and peers on both ends; link steps name one")
    func parsed() throws {
        let scenario = try parse(Self.machines + "networks:\n  lan: [a, b]\n  back: [b, c]\nsteps:\n  - boot: a\n  - link-down: lan\n    machine: a\n")
        let b = try #require(scenario.machine(named: "b"))
        #expect(b.networks == [.init(network: "lan", index: 0, end: 1, peer: "a"), .init(network: "back", index: 1, end: 0, peer: "c")])
        #expect(b.networks[0].address == "192.168.60.2" && b.networks[0].peerAddress == "192.168.60.1" && b.networks[1].mac == "52:54:00:3d:00:01")
        #expect((scenario.steps[1].action as? LinkStep)?.up == false)
    }

    @Test("bad networks name their place", arguments: [
        ("networks:\n  lan: [a, x]\n", 6, 8, "no machine 'x' in this scenario"),
        ("networks:\n  lan: [a, b, c]\n", 6, 8, "a network joins exactly two machines"),
        ("networks:\n  lan: [a, a]\n", 6, 8, "the same one twice"),
        ("networks:\n  Lan: [a, b]\n", 6, 3, "a network name is lower-case letters"),
    ])
    func bad(text: String, line: Int, column: Int, message: String) {
        let error = parseError(Self.machines + text + "steps:\n  - boot: a\n")
        #expect(error?.location == SourceLocation(file: "file.yaml", line: line, column: column))
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }

    @Test("a link step names a network its machine is on")
    func badLinkStep() {
        let error = parseError(Self.machines + "networks:\n  lan: [a, b]\nsteps:\n  - boot: c\n  - link-down: lan\n    machine: c\n")
        #expect(error?.message.contains("machine 'c' is on no network 'lan'") == true, "\(error?.message ?? "no error")")
    }
}
