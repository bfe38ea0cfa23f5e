import Foundation
import NpmRegistry
import Testbed
import TestbedTesting
import Testing

let fixturePackages = packageRoot.appendingPathComponent("scenarios/packages")

/// The boot configuration these cases share: the registry, alice and bob.
func usersConfig(_ registry: Registry) -> BootConfig {
    var config = BootConfig(hostname: "rel", registry: registry.guestURL.absoluteString)
    config.users["alice"] = .init(uid: 1000)
    config.users["bob"] = .init(uid: 1001)
    return config
}

extension Reliability {
    /// Data under stress: what was acknowledged survives, volumes stay clean.
    @Suite("Data under stress")
    struct DataStress {
        @Test("a destroy during an npm install and an fsync loop: clean after replay, every fsync'd write present")
        func destroyDuringInstall() async throws {
            try await injecting("destroy during npm install + fsync loop", category: "data") { notes, work in
                try await withRegistry(packages: fixturePackages) { registry in
                    let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 128, in: work)
                    var acknowledged = 0
                    var tarballsAtCrash = 0
                    try await withMachine({ spec in
                        spec.memoryMiB = 384
                        spec.attach(alice)
                        try? spec.configure(usersConfig(registry), in: work)
                    }) { machine in
                        let writer = """
                        const fs = require('fs');
                        const fd = fs.openSync('log.txt', 'a');
                        for (let i = 1; ; i++) { fs.writeSync(fd, `line ${i}\\n`); fs.fsyncSync(fd); fs.writeFileSync('progress.txt', String(i)); }
                        """
                        try await machine.writeFile("/home/alice/writer.js", Data(writer.utf8))
                        let writing = Task { try? await machine.execute(["node", "writer.js"], user: "alice", timeout: .seconds(900)) }
                        let installing = Task { try? await machine.execute(["npm", "install", "-g", "@nodeos/hello-cli"], user: "alice", timeout: .seconds(900)) }
                        defer { writing.cancel(); installing.cancel() }
                        // Mid-install: some tarballs fetched, not all (the tree has 22).
                        let deadline = ContinuousClock.now + .seconds(600)
                        while registry.tarballRequests.count < 6 {
                            try check(ContinuousClock.now < deadline, "npm fetched only \(registry.tarballRequests.count) tarballs in 600 s")
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        let progress = try await machine.succeed(["node", "-p", "require('fs').readFileSync('/home/alice/progress.txt','utf8')"])
                        acknowledged = Int(progress.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                        tarballsAtCrash = registry.tarballRequests.count
                        await machine.crash()
                    }
                    try check(acknowledged >= 5, "only \(acknowledged) fsync'd writes before the crash")
                    let fsck = try alice.check()
                    try check(fsck.clean, "e2fsck after replay: \(fsck.output)")
                    let lines = String(decoding: try alice.readFile("log.txt"), as: UTF8.self).split(separator: "\n")
                    try check(lines.count >= acknowledged, "\(lines.count) lines on the volume, \(acknowledged) were fsync'd")
                    try check(lines.prefix(acknowledged).enumerated().allSatisfy { $0.element == "line \($0.offset + 1)" }, "the fsync'd lines are not all there in order")
                    notes.figure("fsyncedLines", Double(acknowledged))
                    notes.figure("tarballsAtCrash", Double(tarballsAtCrash))
                    notes.say("destroyed after \(tarballsAtCrash) tarballs and \(acknowledged) fsync'd lines; e2fsck clean after replay, all \(acknowledged) lines present")
                }
            }
        }

        @Test("a home that fills up during an install: npm says ENOSPC, the machine runs on, the volume stays clean")
        func homeFillsUp() async throws {
            try await injecting("home volume full during npm install", category: "data") { notes, work in
                try await withRegistry(packages: fixturePackages) { registry in
                    let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 16, in: work)
                    try await withMachine({ spec in
                        spec.memoryMiB = 384
                        spec.attach(alice)
                        try? spec.configure(usersConfig(registry), in: work)
                    }) { machine in
                        // Fill alice's home, then give back 64 KiB: room for npm to start, not to finish.
                        let fill = """
                        const fs = require('fs'); const fd = fs.openSync('ballast', 'w'); const b = Buffer.alloc(65536); let n = 0;
                        try { for (;;) { fs.writeSync(fd, b); n += b.length; } } catch (e) { if (e.code !== 'ENOSPC') throw e; }
                        fs.ftruncateSync(fd, Math.max(0, n - 65536)); fs.fsyncSync(fd); console.log(n);
                        """
                        let filled = try await machine.succeed(["node", "-e", fill], user: "alice")
                        // npm's cache and logs live in RAM for this install: what fills up is
                        // the install itself (alice's lib), and npm can still write its report.
                        // With its log on the full home too, npm sometimes exited 1 saying
                        // only where the (unwritable) log was.
                        let install = try await machine.execute(["npm", "install", "-g", "--cache", "/tmp/npm-cache-alice", "@nodeos/hello-cli"],
                                                                user: "alice", timeout: .seconds(900))
                        try check(install.status != 0, "npm install succeeded on a full home")
                        let logs = try await machine.execute(["node", "-e", "const d = '/tmp/npm-cache-alice/_logs/'; for (const f of require('fs').readdirSync(d)) process.stdout.write(require('fs').readFileSync(d + f))"], user: "alice")
                        try check((install.stdout + install.stderr).contains("ENOSPC"),
                                  "npm did not report ENOSPC:\n\(install.stderr.suffix(2000))\n--- npm's log ---\n\(logs.stdout.suffix(3000))")
                        // The machine runs on: commands, as root and as alice.
                        try check(try await machine.succeed(["node", "-p", "6*7"]) == "42\n", "the machine stopped answering")
                        try check(try await machine.succeed(["node", "-p", "require('os').userInfo().uid"], user: "alice") == "1000\n", "alice cannot run commands any more")
                        try await machine.shutdown()
                        notes.figure("ballastMiB", (Double(filled.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) / 1_048_576)
                        notes.say("npm exit \(install.status.map(String.init) ?? "signal"), ENOSPC reported; machine answered after")
                    }
                    let fsck = try alice.check()
                    try check(fsck.clean, "e2fsck: \(fsck.output)")
                    try check(try !alice.needsRecovery(), "the journal still needs recovery after a clean shutdown")
                }
            }
        }
    }
}
