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

        @Test("a guest process cannot reach a host loopback port it was not offered; the one it was offered answers")
        func loopbackNotOffered() async throws {
            try await injecting("guest connects to an unoffered host loopback port", category: "security") { notes, work in
                // A port on the host's loopback that nobody offered the guest: a plain TCP listener.
                let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(listener) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let bound = withUnsafeMutablePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &length) == 0 }
                }
                try check(bound, "could not open a listener on 127.0.0.1")
                let port = Int(UInt16(bigEndian: address.sin_port))
                let probe = "const s=require('net').connect({host:process.argv[1],port:+process.argv[2]}); s.setTimeout(5000,()=>{console.log('ETIMEDOUT');process.exit(2)}); s.on('connect',()=>{console.log('connected');process.exit(0)}); s.on('error',(e)=>{console.log(e.code);process.exit(1)})"
                try await withRegistry(packages: fixturePackages) { registry in
                    var config = BootConfig()
                    try await withMachine({ spec in
                        spec.restrictEgress = true
                        spec.offer("registry", TunnelTarget(port: registry.port), atGuestPort: 4873, in: &config)
                        try? spec.configure(config, in: work)
                    }) { machine in
                        let refused = try await machine.execute(["node", "-e", probe, "10.0.2.2", String(port)], user: nil, timeout: .seconds(60))
                        try check(!refused.succeeded && !refused.stdout.contains("connected"), "the guest connected to 127.0.0.1:\(port) on the host: \(refused.stdout)")
                        var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                        try check(poll(&pending, 1, 0) == 0, "the unoffered listener saw a connection from the guest")
                        let offered = try await machine.execute(["node", "-e", probe, "127.0.0.1", "4873"], timeout: .seconds(60))
                        try check(offered.stdout.contains("connected"), "the offered registry did not answer at the guest's 127.0.0.1:4873: \(offered.stdout)")
                        notes.say("host loopback port \(port) not offered: \(refused.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), nothing reached the listener; the offered registry answered through the tunnel")
                        try await machine.shutdown()
                    }
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
