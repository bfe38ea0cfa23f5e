import Foundation
import NpmRegistry
import Testbed
import TestbedTesting
import Testing

extension Reliability {
    /// Bad input: clear messages, a machine that boots ephemeral, nothing changed on disk.
    @Suite("Bad input")
    struct BadInput {
        static func sha256(_ file: URL) throws -> String {
            try HostCommand("sha256sum", [file.path], step: "hashing \(file.lastPathComponent)").run().stdoutText
                .split(separator: " ").first.map(String.init) ?? ""
        }

        @Test("corrupt and truncated homes, a malformed config volume and garbage kernel parameters: named, ephemeral, untouched")
        func badVolumesConfigAndCmdline() async throws {
            try await injecting("corrupt + truncated homes, malformed config volume, garbage kernel parameters", category: "bad input") { notes, work in
                let zeros = work.appendingPathComponent("alice-zeros.img")
                try Data(count: 8 << 20).write(to: zeros)
                let bob = try HomeVolume.create(user: "bob", uid: 1001, sizeMiB: 64, files: ["kept.txt": Data("bob's\n".utf8)], in: work)
                // Cut to 2 MiB: the superblock survives, the rest of the file system does not.
                try HostCommand("truncate", ["-s", "2M", bob.path.path], step: "truncating bob's volume").run()
                let config = work.appendingPathComponent("garbage-config.img")
                var garbage = Data(#"{"hostname": "x", "users": {"alice": {"uid": "#.utf8)
                garbage.append(Data(count: 4096 - garbage.count))
                try garbage.write(to: config)
                let before = (try Self.sha256(zeros), try Self.sha256(bob.path))
                try await withMachine({ spec in
                    spec.disks.append(DomainSpec.Disk(path: zeros.path, serial: "home-alice"))
                    spec.attach(bob)
                    spec.disks.append(DomainSpec.Disk(path: config.path, serial: BootConfig.serial))
                    spec.kernelParameters += ["nodeos.hostname=-bad", "nodeos.bogus=1"]
                    spec.allowedGuestErrors = ["homes", "config", "cmdline"]
                }) { machine in
                    let console = machine.console.log.text()
                    for expected in [
                        "nodeos: error config: (volume): not valid JSON",
                        "nodeos: error cmdline: nodeos.hostname=-bad: expected a host name",
                        "nodeos: error cmdline: unknown parameter nodeos.bogus",
                        "nodeos: error homes: home-alice",
                        "no ext4 superblock",
                        "nodeos: error homes: home-bob",
                    ] {
                        try check(console.contains(expected), "the console does not say '\(expected)':\n\(console.suffix(3000))")
                    }
                    // Ephemeral: the homes exist, in RAM, and work.
                    let mounts = try await machine.succeed(["node", "-p", "require('fs').readFileSync('/proc/mounts', 'utf8')"])
                    for home in ["/home/alice", "/home/bob"] {
                        try check(!mounts.split(separator: "\n").contains { $0.hasPrefix("/dev/vd") && $0.contains(" \(home) ") }, "\(home) was mounted from a disk:\n\(mounts)")
                    }
                    try await machine.succeed(["node", "-e", "require('fs').writeFileSync('/home/alice/scratch', 'x')"], user: "alice")
                    try check(try await machine.succeed(["node", "-p", "require('os').hostname()"]) == "nodeos\n", "the host name is not the default")
                    try await machine.shutdown()
                }
                // Never formatted, never written: the bytes are the same.
                let after = (try Self.sha256(zeros), try Self.sha256(bob.path))
                try check(before == after, "a bad volume changed: \(before) → \(after)")
                notes.say("6 messages named on the console; homes in RAM; both bad volumes byte-identical afterwards")
            }
        }

        @Test("a registry that answers garbage: npm's own error, nothing installed")
        func registryGarbage() async throws {
            try await injecting("registry answers garbage metadata", category: "bad input") { notes, work in
                try await withRegistry(packages: fixturePackages) { registry in
                    try await registry.inject(.garbageMetadata)
                    let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 64, in: work)
                    try await withMachine({ spec in
                        spec.memoryMiB = 384
                        spec.attach(alice)
                        try? spec.configure(usersConfig(registry), in: work)
                    }) { machine in
                        let install = try await machine.execute(["npm", "install", "-g", "@nodeos/hello-cli"], user: "alice", timeout: .seconds(600))
                        let output = install.stdout + install.stderr
                        try check(install.status != 0, "npm succeeded against garbage")
                        try check(output.contains("EJSONPARSE") || output.contains("Unexpected token"), "npm's error is not a parse error:\n\(output.suffix(2000))")
                        try check(try await machine.fail(["sh", "-c", "hello"], user: "alice").status == 127, "something was installed")
                        let code = output.contains("EJSONPARSE") ? "EJSONPARSE" : "Unexpected token"
                        notes.say("npm exit \(install.status.map(String.init) ?? "signal") with \(code)")
                        try await machine.shutdown()
                    }
                    try check(try alice.check().clean, "alice's volume is not clean")
                }
            }
        }
    }
}
