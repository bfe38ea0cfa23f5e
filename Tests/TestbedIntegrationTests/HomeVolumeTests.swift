import Foundation
import Testbed
import TestbedTesting
import Testing

/// Home volumes on real machines: injected from the host, persistent across
/// reboots, private to their user, and read back on the host after shutdown.
@Suite("Home volumes", .requiresNodeOSImage, .serialized)
struct HomeVolumeTests {
    let work: URL

    init() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-homes-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    private func cleanUp() { try? FileManager.default.removeItem(at: work) }

    @Test("inject, isolate, persist across a reboot, forget everything else, read back on the host")
    func homesLifecycle() async throws {
        defer { cleanUp() }
        let alice = try HomeVolume.create(user: "alice", uid: 1000, files: ["notes/hello.txt": Data("from the host\n".utf8)], in: work)
        let bob = try HomeVolume.create(user: "bob", uid: 1001, in: work)
        var config = BootConfig(hostname: "homes")
        config.users["alice"] = .init(uid: 1000, password: try BootConfig.hashPassword("s3cret", cost: 1024))
        config.users["bob"] = .init(uid: 1001)
        let spec = { (spec: inout MachineSpec) in
            spec.attach(alice)
            spec.attach(bob)
            try? spec.configure(config, in: work)
        }
        try await withMachine(spec) { machine in
            // Injection: the host's file, owned by and readable to its user.
            #expect(try await machine.succeed("cat notes/hello.txt", user: "alice") == "from the host\n")
            #expect(try await machine.succeed("node -p \"require('fs').statSync('/home/alice').mode.toString(8)\"", user: "alice") == "40700\n")
            // Isolation: bob cannot read alice's home; root can.
            let denied = try await machine.fail("cat /home/alice/notes/hello.txt", user: "bob")
            #expect(denied.stderr.contains("EACCES"))
            #expect(try await machine.succeed("cat /home/alice/notes/hello.txt") == "from the host\n")
            // The root file system is read-only.
            let erofs = try await machine.fail("node -e \"require('fs').writeFileSync('/x', 'y')\"")
            #expect(erofs.stderr.contains("EROFS"))
            // Writes: one to the home (persists), two outside it (gone after a reboot).
            try await machine.succeed(["node", "-e", "const fs=require('fs'); fs.writeFileSync('written.txt', 'by alice\\n'); fs.fsyncSync(fs.openSync('written.txt','r'))"], user: "alice")
            try await machine.succeed("touch /tmp/scratch /etc/scratch /home/bob/../bob-was-here", user: "root")
            let bootBefore = try await machine.succeed("cat /proc/sys/kernel/random/boot_id")

            try await machine.reboot()

            #expect(try await machine.succeed("cat /proc/sys/kernel/random/boot_id") != bootBefore)
            #expect(try await machine.succeed("cat written.txt", user: "alice") == "by alice\n")
            for gone in ["/tmp/scratch", "/etc/scratch", "/home/bob-was-here"] {
                let result = try await machine.fail("ls \(gone)")
                #expect(result.stderr.contains("ENOENT"), "\(gone) survived the reboot")
            }
            // Login at the console: refused with a wrong password, a shell as alice with the right one.
            try await machine.console.send("login alice\n")
            _ = try await machine.console.expect("Password: ")
            try await machine.console.send("wrong\n")
            _ = try await machine.console.expect("Login incorrect")
            try await machine.console.send("login alice\n")
            _ = try await machine.console.expect("Password: ")
            try await machine.console.send("s3cret\n")
            _ = try await machine.console.expect(.regex(#"alice@homes:/home/alice\$ "#))
            try await machine.console.send("id\n")
            _ = try await machine.console.expect("uid=1000(alice)")
            try await machine.console.send("exit\n")

            try await machine.shutdown()
        }
        // A clean shutdown unmounted the homes: nothing is left for the journal.
        #expect(try !alice.needsRecovery())
        #expect(try !bob.needsRecovery())
        // After a clean shutdown the host reads the volume without mounting it.
        #expect(try alice.readFile("written.txt") == Data("by alice\n".utf8))
        #expect(try alice.readFile("notes/hello.txt") == Data("from the host\n".utf8))
        #expect(try alice.check().clean)
        #expect(try bob.check().clean)
    }

    @Test("a destroy while a user writes in a loop leaves a clean volume with every fsync'd write")
    func crashKeepsFsyncedWrites() async throws {
        defer { cleanUp() }
        let alice = try HomeVolume.create(user: "alice", uid: 1000, in: work)
        var acknowledged = 0
        try await withMachine({ $0.attach(alice) }) { machine in
            // Line i is fsync'd before "i" is written to progress.txt, so
            // whatever progress.txt says was durable when it was read.
            let script = """
            const fs = require('fs');
            const fd = fs.openSync('log.txt', 'a');
            for (let i = 1; ; i++) { fs.writeSync(fd, `line ${i}\\n`); fs.fsyncSync(fd); fs.writeFileSync('progress.txt', String(i)); }
            """
            try await machine.writeFile("/home/alice/writer.js", Data(script.utf8))
            let writer = Task { try? await machine.execute(["node", "writer.js"], user: "alice", timeout: .seconds(900)) }
            defer { writer.cancel() }
            let progress = try await machine.waitUntilSucceeds(
                "node -e \"const n=+require('fs').readFileSync('/home/alice/progress.txt','utf8'); if (n < 20) process.exit(1); console.log(n)\"",
                timeout: .seconds(300))
            acknowledged = Int(progress.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            await machine.crash()
        }
        #expect(acknowledged >= 20)
        let check = try alice.check()
        #expect(check.clean, "e2fsck after replay: \(check.output)")
        let log = try String(decoding: alice.readFile("log.txt"), as: UTF8.self)
        let lines = log.split(separator: "\n")
        #expect(lines.count >= acknowledged, "only \(lines.count) lines on the volume, \(acknowledged) were fsync'd")
        #expect(lines.prefix(acknowledged).enumerated().allSatisfy { $0.element == "line \($0.offset + 1)" })
    }

    @Test("corrupt, damaged and missing volumes are reported and the machine still boots")
    func badVolumes() async throws {
        defer { cleanUp() }
        let zeros = work.appendingPathComponent("zeros.img")
        try Data(count: 8 << 20).write(to: zeros)
        let damaged = try HomeVolume.create(user: "dave", uid: 1003, files: ["keep.txt": Data("kept\n".utf8)], in: work)
        try HostCommand("debugfs", ["-w", "-R", "ssv state 3", damaged.path.path], step: "marking dave's volume as having errors").run()
        var config = BootConfig()
        config.users["carol"] = .init(uid: 1002)
        config.users["erin"] = .init(uid: 1004)
        try await withMachine({ spec in
            spec.disks.append(DomainSpec.Disk(path: zeros.path, serial: "home-carol"))
            spec.attach(damaged)
            spec.allowedGuestErrors = ["homes"]
            try? spec.configure(config, in: work)
        }) { machine in
            let console = machine.console.text
            #expect(console.contains("nodeos: error homes: home-carol"))
            #expect(console.contains("no ext4 superblock"))
            #expect(console.contains("nodeos: error homes: home-dave"))
            #expect(console.contains("mounted read-only"))
            #expect(console.contains("nodeos: warning homes: no volume with serial home-erin"))
            // Still a working machine; dave's files are readable but not writable.
            #expect(try await machine.succeed("cat /home/dave/keep.txt") == "kept\n")
            let readOnly = try await machine.fail("touch /home/dave/new")
            #expect(readOnly.stderr.contains("EROFS"))
            try await machine.shutdown()
        }
        // Never formatted: the zeros are still zeros.
        #expect(try Data(contentsOf: zeros) == Data(count: 8 << 20))
    }
}
