import Foundation
@testable import Testbed
import Testing

@Suite("Boot phase lines")
struct BootPhaseTests {
    @Test("phase lines", arguments: [
        ("nodeos: phase kernel 301.220ms", "kernel", 301.220, nil as String?),
        ("nodeos: phase config-apply 5.000ms", "config-apply", 5.0, nil),
        ("nodeos: ready 541.002ms boot=3f0c-11", "ready", 541.002, "3f0c-11"),
        ("[    0.5] nodeos: phase init 512.870ms", "init", 512.870, nil),
    ])
    func phase(line: String, name: String, ms: Double, boot: String?) {
        #expect(GuestLine.parse(line) == .phase(name: name, guestMilliseconds: ms, bootID: boot))
    }

    @Test("other machine-readable lines")
    func others() {
        #expect(GuestLine.parse("nodeos: error config: users.alice.uid: expected a number") == .error(step: "config", message: "users.alice.uid: expected a number"))
        #expect(GuestLine.parse("nodeos: warning homes: no home volume for bob") == .warning(step: "homes", message: "no home volume for bob"))
        #expect(GuestLine.parse("nodeos: config ok") == .config(ok: true))
        #expect(GuestLine.parse("nodeos: config failed") == .config(ok: false))
        #expect(GuestLine.parse("nodeos: shutdown poweroff") == .shutdown(reason: "poweroff"))
        #expect(GuestLine.parse("nodeos: halted") == .halted)
    }

    @Test("lines that are not init's", arguments: ["Linux version 6.1", "nodeos: phase Kernel 1.0ms", "nodeos: phase kernel 1.0ms", "nodeos: something"])
    func notPhases(line: String) {
        #expect(GuestLine.parse(line) == nil)
    }

    @Test("the timeline maps guest timestamps onto the host clock through the least-delayed line")
    func timeline() {
        var timeline = BootTimeline()
        // init prints kernel and node late, with their real guest times.
        timeline.consume(line: "nodeos: phase kernel 1000.000ms", hostMilliseconds: 3100)
        timeline.consume(line: "nodeos: phase node 1100.000ms", hostMilliseconds: 3100)
        timeline.consume(line: "nodeos: phase init 2990.000ms", hostMilliseconds: 3100)
        timeline.consume(line: "nodeos: ready 3500.000ms boot=b1", hostMilliseconds: 3620)
        timeline.consume(line: "nodeos: ready 9999.000ms boot=b2", hostMilliseconds: 9999) // second boot: ignored
        timeline.record("agentReady", hostMilliseconds: 3630)
        #expect(timeline.guestClockOffset == 110)
        let phases = Dictionary(uniqueKeysWithValues: timeline.hostPhases.map { ($0.name, $0.milliseconds) })
        #expect(phases["kernel"] == 1110)
        #expect(phases["init"] == 3100)
        #expect(phases["ready"] == 3610)
        #expect(phases["agentReady"] == 3630)
        #expect(timeline.bootID == "b1")
        #expect(timeline.isReady)
    }
}
