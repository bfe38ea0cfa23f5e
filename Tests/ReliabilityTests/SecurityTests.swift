import Foundation
import NpmRegistry
import Testbed
import TestbedTesting
import Testing

extension Reliability {
    /// Security: users stay inside their homes, whatever their packages run.
    @Suite("Security")
    struct Security {
        static let hostilePackages = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/packages")

        /// What each attempt of the hostile install script must end with.
        static let expected: [String: Set<String>] = [
            "readOtherHome": ["EACCES"], "writeOtherHome": ["EACCES"], "listOtherHome": ["EACCES"],
            "readShadow": ["EACCES"], "writePasswd": ["EACCES", "EROFS"], "writeRootFs": ["EACCES", "EROFS"],
            "replaceInit": ["EACCES", "EROFS"], "writeRootHome": ["EACCES", "ENOENT"], "openAgentPort": ["EACCES"],
            "openRootDisk": ["EACCES"], "setuidRoot": ["EPERM"], "signalInit": ["EPERM"], "mountTmpfs": ["EPERM"],
            "reboot": ["EPERM"], "setHostname": ["EPERM"],
        ]

        @Test("a hostile install script cannot leave its user: other homes, the root file system, the agent port, init, mounts")
        func hostileInstallScript() async throws {
            try await injecting("hostile package install script (15 escape attempts)", category: "security") { notes, work in
                try await withRegistry(packages: Self.hostilePackages) { registry in
                    let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 64, in: work)
                    let bob = try HomeVolume.create(user: "bob", uid: 1001, files: ["secret.txt": Data("bob's secret\n".utf8)], in: work)
                    try await withMachine({ spec in
                        spec.memoryMiB = 384
                        spec.attach(alice)
                        spec.attach(bob)
                        try? spec.configure(usersConfig(registry), in: work)
                    }) { machine in
                        let install = try await machine.execute(["npm", "install", "-g", "@nodeos/escape-artist"], user: "alice", timeout: .seconds(600))
                        try check(install.status == 0, "the install failed: \(install.stderr.suffix(2000))")
                        let report = try JSONDecoder().decode(JSONValue.self, from: try await machine.readFile("/home/alice/escape-report.json"))
                        try check(report["uid"]?.intValue == 1000, "the script did not run as alice: \(report.jsonText)")
                        var outcomes: [String] = []
                        for (attempt, codes) in Self.expected.sorted(by: { $0.key < $1.key }) {
                            let got = report["results"]?[attempt]?.stringValue ?? "missing"
                            try check(codes.contains(got), "\(attempt): expected \(codes.sorted().joined(separator: " or ")), got \(got)")
                            outcomes.append("\(attempt)=\(got)")
                        }
                        // Directly too: alice cannot open the agent's port.
                        let port = try await machine.fail(["node", "-e", "const fs = require('fs'); for (const d of fs.readdirSync('/dev')) if (/^vport/.test(d)) fs.openSync('/dev/' + d, 'r')"], user: "alice")
                        try check(port.stderr.contains("EACCES"), "opening the agent port as alice: \(port.stderr)")
                        // init is alive and the machine unchanged.
                        try check(try await machine.succeed(["node", "-p", "require('os').hostname()"]) == "rel\n", "the host name changed")
                        try await machine.shutdown()
                        notes.figure("attempts", Double(Self.expected.count))
                        notes.say("all \(Self.expected.count) attempts refused: " + outcomes.joined(separator: ", "))
                    }
                    try check(try bob.readFile("secret.txt") == Data("bob's secret\n".utf8), "bob's secret changed")
                    try check(try !bob.fileExists("owned.txt"), "the script wrote into bob's home")
                }
            }
        }

        @Test("the registry and every socket the testbed listens on are bound to loopback")
        func loopbackOnly() async throws {
            try await injecting("host sockets bound to loopback only", category: "security") { notes, work in
                try await withRegistry(packages: fixturePackages) { registry in
                    try await withMachine({ spec in
                        spec.capture = true
                        try? spec.configure(usersConfig(registry), in: work)
                    }) { machine in
                        let listening = Self.listeningSockets()
                        try check(!listening.isEmpty, "found no listening socket of this process (the registry listens)")
                        let exposed = listening.filter { !$0.hasPrefix("127.0.0.1:") && !$0.hasPrefix("[::1]:") }
                        try check(exposed.isEmpty, "listening beyond loopback: \(exposed)")
                        // QEMU's user-mode network forwards nothing from the host to the guest.
                        let qemuListening = Self.listeningSockets(ofAnyOf: EmbedRoot.processes(mentioning: "guest=\(machine.name)"))
                        try check(qemuListening.isEmpty, "QEMU listens on \(qemuListening)")
                        notes.say("listening: \(listening.joined(separator: ", ")); QEMU: none")
                        try await machine.shutdown()
                    }
                }
            }
        }

        /// `address:port` of every TCP socket in LISTEN state owned by these processes (default: this one).
        static func listeningSockets(ofAnyOf pids: [Int32]? = nil) -> [String] {
            let pids = pids ?? [getpid()]
            var inodes = Set<String>()
            for pid in pids {
                for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                    if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                       target.hasPrefix("socket:[") {
                        inodes.insert(String(target.dropFirst(8).dropLast()))
                    }
                }
            }
            var result: [String] = []
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
                for line in text.split(separator: "\n").dropFirst() {
                    let fields = line.split(separator: " ")
                    guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])) else { continue }
                    result.append(decode(String(fields[1])))
                }
            }
            return result
        }

        /// `0100007F:1F90` → `127.0.0.1:8080`; IPv6 as `[::1]:port` for loopback, raw otherwise.
        static func decode(_ field: String) -> String {
            let parts = field.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return field }
            let hex = String(parts[0])
            if hex.count == 8, let value = UInt32(hex, radix: 16) {
                let bytes = [value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF, value >> 24]
                return bytes.map(String.init).joined(separator: ".") + ":\(port)"
            }
            if hex == "00000000000000000000000001000000" { return "[::1]:\(port)" }
            return "[\(hex)]:\(port)"
        }
    }
}
