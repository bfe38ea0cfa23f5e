import Foundation
@testable import Testbed
import Testing

@Suite("Support")
struct SupportTests {
    @Test("command strings split like a shell's words", arguments: [
        ("uname -r", ["uname", "-r"]),
        ("node -e 'console.log(1 + 1)'", ["node", "-e", "console.log(1 + 1)"]),
        (#"echo "a \"b\"" c\ d"#, ["echo", #"a "b""#, "c d"]),
        ("  spaced   out  ", ["spaced", "out"]),
        ("empty '' arg", ["empty", "", "arg"]),
        // In double quotes sh keeps a backslash before anything but $ ` " \.
        (#"node -e "console.log('x\n' + \"y\" + '\\')""#, ["node", "-e", #"console.log('x\n' + "y" + '\')"#]),
        (#"echo "\$HOME""#, ["echo", "$HOME"]),
    ])
    func split(command: String, words: [String]) {
        #expect(CommandWords.split(command) == words)
    }

    @Test("deadlines scale with the accelerator")
    func deadlines() {
        #expect(Deadlines(accelerator: .kvm).agent == .seconds(15))
        #expect(Deadlines(accelerator: .tcg).agent == .seconds(150))
        #expect(Deadlines(accelerator: .tcg).command == .seconds(300))
    }

    @Test("the machine bound holds back the third of two")
    func limiter() async throws {
        let limiter = Slots(limit: 2)
        try await limiter.acquire()
        try await limiter.acquire()
        let third = Task { try await limiter.acquire(); return true }
        try await Task.sleep(for: .milliseconds(50))
        #expect(limiter.inUse == 2)
        limiter.release()
        #expect(try await third.value)
        #expect(limiter.inUse == 2)
    }

    @Test("the boot report's JSON keeps phases in order")
    func reportJSON() {
        let report = BootReport(
            machine: "m", phases: [("hostStart", 0), ("firstConsoleByte", 12.3456), ("ready", 900)],
            guestPhases: [("ready", 800)], memory: MemoryReport(guestTotalKiB: 100, guestAvailableKiB: 60, initRssKiB: 20, qemuRssKiB: 300),
            accelerator: .tcg, imageHash: "h", kernelVersion: "6.1", nodeVersion: "v24", bootID: "b", libvirtURI: "qemu:///embed?root=/r",
            startedAt: "2026-01-01T00:00:00Z", artifacts: "/a", problems: [])
        let json = report.orderedJSON.render(pretty: false)
        #expect(json.hasPrefix(#"{"machine":"m","phases":{"hostStart":0,"firstConsoleByte":12.346,"ready":900},"guestPhases":{"ready":800},"memory":{"guestTotalKiB":100,"guestAvailableKiB":60,"guestUsedKiB":40,"#))
        #expect(report.json.contains("\n  \"accelerator\": \"tcg\""))
        #expect(report["ready"] == 900)
    }

    @Test("the embedded driver's qemu.conf runs QEMU as root with file stdio")
    func qemuConf() {
        #expect(EmbedRoot.qemuConf.contains(#"user = "root""#))
        #expect(EmbedRoot.qemuConf.contains(#"group = "root""#))
        #expect(EmbedRoot.qemuConf.contains(#"stdio_handler = "file""#))
    }

    @Test("the sweep removes roots of dead owners and keeps live ones")
    func sweep() throws {
        let parent = EmbedRoot.parent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let dead = "\(parent)/999999999-7"
        try FileManager.default.createDirectory(atPath: dead + "/etc", withIntermediateDirectories: true)
        try "999999999 12345\n".write(toFile: dead + "/owner", atomically: true, encoding: .utf8)
        let swept = EmbedRoot.sweepLeftovers()
        #expect(swept.contains("removed \(dead)"))
        #expect(!FileManager.default.fileExists(atPath: dead))
    }

    @Test("artifacts go to <base>/<run-id>/<machine>")
    func artifacts() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-artifacts-\(getpid())")
        defer { try? FileManager.default.removeItem(at: base) }
        let run = try ArtifactsRun(base: base, runID: "run-1")
        let folder = try run.folder(for: "web")
        #expect(folder.path == base.appendingPathComponent("run-1/web").standardizedFileURL.path)
        #expect(FileManager.default.fileExists(atPath: folder.path))
        #expect(ArtifactsRun.makeRunID(date: Date(timeIntervalSince1970: 0), pid: 42) == "19700101-000000-42")
    }
}
