import Foundation
import Testbed
import TestbedTesting
import Testing

/// Machines on a libvirtd reached through libvirt's remote protocol (a private
/// daemon on this host, see ``PrivateLibvirtd``): volumes travel through the
/// storage API, and scenarios spread over it and the embedded driver.
///
/// Slow (real VMs under TCG). Skipped without root or libvirtd; with
/// `CI=true` those fail instead.
@Suite("a private libvirtd over the remote protocol", .serialized, .requiresNodeOSImage, .requiresPrivateLibvirtd)
struct RemoteLibvirtdTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: URL { TestbedEnvironment.testbedBinary }

    /// Starts a daemon, runs `body`, and stops the daemon whatever happened;
    /// then nothing of it may be left: no process, no folder.
    func withPrivateLibvirtd<T>(_ body: (PrivateLibvirtd) async throws -> T) async throws -> T {
        if let reason = PrivateLibvirtd.unavailableReason {
            // Only reached with CI=true (the suite's trait skips otherwise).
            Issue.record(Comment(rawValue: "CI=true but a private libvirtd cannot run here: \(reason)"))
            throw PrivateLibvirtdError(message: reason)
        }
        let daemon = try PrivateLibvirtd.start()
        let result: T
        do {
            result = try await body(daemon)
        } catch {
            daemon.stop()
            throw error
        }
        daemon.stop()
        #expect(daemon.processes().isEmpty, "processes of the private libvirtd are left: \(daemon.processes())")
        #expect(!FileManager.default.fileExists(atPath: daemon.directory), "\(daemon.directory) is left")
        let leftover = try PrivateLibvirtd.pgrep(daemon.directory)
        #expect(leftover.isEmpty, "pgrep -f \(daemon.directory): \(leftover)")
        return result
    }

    /// Volume names in the daemon's `nodeos-testbed` pool.
    static func poolVolumes(_ daemon: PrivateLibvirtd) throws -> [String] {
        let listing = try PrivateLibvirtd.virsh(["-c", daemon.uri, "vol-list", VolumeStaging.defaultPoolName], timeout: 30)
        #expect(listing.status == 0, "virsh vol-list \(VolumeStaging.defaultPoolName) failed: the pool does not exist")
        // " Name   Path", a rule, then one volume a line.
        return listing.stdout.split(separator: "\n").dropFirst(2).compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    @Test("a home volume is uploaded, the guest reads and writes it, and the host reads the write after shutdown")
    func homeVolumeRoundTrip() async throws {
        let image = try TestbedEnvironment.requireImage()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("remote-home-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        try await withPrivateLibvirtd { daemon in
            let alice = try HomeVolume.create(user: "alice", uid: 1000, files: ["from-host.txt": Data("written on the host\n".utf8)], in: work)
            let testbed = try await Testbed(uri: daemon.uri, artifacts: try ArtifactsRun(base: work.appendingPathComponent("artifacts")))
            #expect(testbed.staging?.poolName == VolumeStaging.defaultPoolName, "a qemu+unix URI counts as remote: volumes are uploaded")
            var spec = MachineSpec(name: "remote-home", image: image)
            spec.attach(alice)
            try spec.configure(BootConfig(hostname: "remote", users: ["alice": .init(uid: 1000)]), in: work)
            let machine = try await Machine.start(spec, in: testbed)
            do {
                try await machine.waitForAgent()
                // The guest's disks are the pool's volumes, not this host's files.
                let xml = try String(contentsOf: machine.artifacts.appendingPathComponent("domain.xml"), encoding: .utf8)
                #expect(xml.contains("<source file='\(VolumeStaging.defaultPoolPath)/remote-home-"))
                #expect(!xml.contains(alice.path.path) && !xml.contains(image.rootfsPath), "the domain names a local path:\n\(xml)")
                let uploaded = try Self.poolVolumes(daemon)
                #expect(uploaded.contains { $0.hasPrefix("remote-home-") && $0.hasSuffix("-home-alice") }, "volumes: \(uploaded)")
                #expect(uploaded.contains { $0.hasSuffix("-nodeos-config") }, "volumes: \(uploaded)")
                #expect(try await machine.succeed("cat from-host.txt", user: "alice") == "written on the host\n")
                #expect(try await machine.succeed("hostname") == "remote\n")
                try await machine.succeed(["node", "-e", "require('fs').writeFileSync('from-guest.txt', 'written in the guest\\n')"], user: "alice")
                try await machine.shutdown()
            } catch {
                await machine.finish()
                await testbed.close()
                throw error
            }
            let problems = await machine.problems
            #expect(problems.isEmpty, "problems: \(problems)")
            // Downloaded into the local file on shutdown.
            #expect(try alice.readFile("from-guest.txt") == Data("written in the guest\n".utf8))
            #expect(try alice.readFile("from-host.txt") == Data("written on the host\n".utf8))
            #expect(try alice.check().clean)
            // Holes travel as holes: the downloaded 64 MiB volume is still mostly unallocated.
            var status = stat()
            #expect(stat(alice.path.path, &status) == 0)
            #expect(Int64(status.st_blocks) * 512 < Int64(status.st_size) / 2, "\(status.st_blocks * 512) bytes allocated of \(status.st_size)")
            // The machine's volumes are gone; the image's stay for the next machine.
            let left = try Self.poolVolumes(daemon)
            let hash = image.manifest.imageHash
            #expect(Set(left) == ["nodeos-\(hash)-\(image.manifest.kernel)", "nodeos-\(hash)-rootfs.erofs"], "volumes left in the pool: \(left)")
            await testbed.close()
        }
    }

    @Test("a failed upload names its step, and the volumes uploaded before it are deleted")
    func failedUpload() async throws {
        let image = try TestbedEnvironment.requireImage()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("remote-fail-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        try await withPrivateLibvirtd { daemon in
            let alice = try HomeVolume.create(user: "alice", uid: 1000, in: work)
            let testbed = try await Testbed(uri: daemon.uri, artifacts: try ArtifactsRun(base: work.appendingPathComponent("artifacts")))
            var spec = MachineSpec(name: "remote-fail", image: image)
            spec.accelerator = .tcg
            spec.attach(alice)
            let missing = work.appendingPathComponent("home-bob.ext4").path
            spec.disks.append(DomainSpec.Disk(path: missing, serial: "home-bob"))
            do {
                let machine = try await Machine.start(spec, in: testbed)
                await machine.finish()
                Issue.record("the machine started although home-bob's file does not exist")
            } catch {
                let message = "\(error)"
                #expect(message.contains("uploading home-bob (\(missing)) to pool \(VolumeStaging.defaultPoolName) on URI \(daemon.uri)"), "\(message)")
            }
            // alice's volume went up first; it must not stay behind.
            let left = try Self.poolVolumes(daemon)
            #expect(left.allSatisfy { $0.hasPrefix("nodeos-") }, "volumes left in the pool: \(left)")
            await testbed.close()
        }
    }

    @Test("npm install and the web app through the remote protocol, from a daemon whose loopback is not ours")
    func serverScenariosRemote() async throws {
        _ = try TestbedEnvironment.requireImage()
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("the testbed binary is not built at \(Self.binary.path): run 'swift build' first")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("remote-server-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withPrivateLibvirtd { daemon in
            let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
            let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(daemon.pid)/ns/net")
            #expect(ours != theirs, "the daemon shares our network namespace (\(ours)): its guests could reach our loopback")
            let scenarios = ["npm-install.yaml", "deploy-app.yaml"].map { Self.packageRoot.appendingPathComponent("scenarios/\($0)").path }
            let result = try Self.runTestbed(["run"] + scenarios + ["--connect", daemon.uri, "--json", "run.json"], in: folder)
            #expect(result.status == 0, "testbed run exited with \(result.status):\n\(result.stderr.suffix(6000))")
            let report = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: folder.appendingPathComponent("run.json")))
            let results = report["results"]?.elements ?? []
            #expect(results.count == 2)
            for scenario in results {
                #expect(scenario["status"]?.stringValue == "passed", "\(scenario["name"]?.stringValue ?? "?"): \(scenario["failure"]?["summary"]?.stringValue ?? "")")
                #expect(scenario["libvirtURI"]?.stringValue == daemon.uri)
            }
        }
    }

    @Test("a forwarded port through the remote protocol: the same checks and timings as on the embedded driver")
    func forwardRemote() async throws {
        let image = try TestbedEnvironment.requireImage()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("remote-forward-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        try await withPrivateLibvirtd { daemon in
            let testbed = try await Testbed(uri: daemon.uri, artifacts: try ArtifactsRun(base: work.appendingPathComponent("artifacts")))
            var spec = MachineSpec(name: "remote-forward", image: image)
            spec.accelerator = .tcg
            try ForwardTests.serving(&spec, in: work)
            do {
                try await Machine.with(spec, in: testbed) { machine in
                    _ = try await ForwardTests.measure(machine, label: "remote protocol")
                }
            } catch {
                await testbed.close()
                throw error
            }
            await testbed.close()
        }
    }

    @Test("the shipped scenarios on two URIs at once: the embedded driver and the private libvirtd")
    func scenariosOnTwoURIs() async throws {
        _ = try TestbedEnvironment.requireImage()
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("the testbed binary is not built at \(Self.binary.path): run 'swift build' first")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("remote-scenarios-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withPrivateLibvirtd { daemon in
            let began = ContinuousClock.now
            let result = try Self.runTestbed([
                "run", Self.packageRoot.appendingPathComponent("scenarios").path, "--parallel", "2",
                "--connect", "embedded", "--connect", daemon.uri, "--json", "run.json",
            ], in: folder)
            let seconds = (ContinuousClock.now - began).milliseconds / 1000
            #expect(result.status == 0, "testbed run exited with \(result.status):\n\(result.stderr.suffix(6000))")

            let report = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: folder.appendingPathComponent("run.json")))
            let scenarios = report["results"]?.elements ?? []
            let shipped = try FileManager.default.contentsOfDirectory(atPath: Self.packageRoot.appendingPathComponent("scenarios").path)
                .filter { $0.hasSuffix(".yaml") }
            #expect(scenarios.count == shipped.count)
            var byURI: [String: [String]] = [:]
            for scenario in scenarios {
                let name = scenario["name"]?.stringValue ?? "?"
                #expect(scenario["status"]?.stringValue == "passed", "\(name): \(scenario["failure"]?["summary"]?.stringValue ?? "")")
                byURI[scenario["libvirtURI"]?.stringValue ?? "?", default: []].append(name)
            }
            let onDaemon = byURI[daemon.uri] ?? []
            let onEmbedded = byURI.filter { LibvirtURI.isEmbedded($0.key) }.flatMap(\.value)
            print(String(format: "two-URI run: %.1f s; on the embedded driver: %@; on %@: %@", seconds,
                         onEmbedded.joined(separator: ", "), daemon.uri, onDaemon.joined(separator: ", ")))
            #expect(!onDaemon.isEmpty, "no scenario ran on \(daemon.uri): \(byURI)")
            #expect(!onEmbedded.isEmpty, "no scenario ran on the embedded driver: \(byURI)")

            // Every machine on the daemon booted from uploaded volumes.
            for scenario in scenarios where scenario["libvirtURI"]?.stringValue == daemon.uri {
                for boot in scenario["bootReports"]?.elements ?? [] {
                    guard let artifacts = boot["artifacts"]?.stringValue else { continue }
                    let xml = try String(contentsOfFile: artifacts + "/domain.xml", encoding: .utf8)
                    #expect(xml.contains("<source file='\(VolumeStaging.defaultPoolPath)/nodeos-"), "\(artifacts)/domain.xml does not name the pool's rootfs")
                    #expect(!xml.contains("<source file='/tmp/") && !xml.contains("<source file='\(TestbedEnvironment.imageDirectory.path)"),
                            "\(artifacts)/domain.xml names a local path")
                }
            }
            // The pool is there and holds only the image's volumes: every machine's own were deleted.
            let left = try Self.poolVolumes(daemon)
            #expect(!left.isEmpty && left.allSatisfy { $0.hasPrefix("nodeos-") }, "volumes left in the pool: \(left)")
            let log = (try? String(contentsOf: folder.appendingPathComponent("artifacts").appendingPathComponent(
                (try? FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("artifacts").path).first) ?? "")
                .appendingPathComponent("libvirt.log"), encoding: .utf8)) ?? ""
            #expect(log.contains("volume(s) uploaded to pool \(VolumeStaging.defaultPoolName)"), "the run's libvirt.log says nothing was uploaded")
        }
    }

    /// Runs `testbed ARGS` in `directory` with its artifacts under it.
    static func runTestbed(_ arguments: [String], in directory: URL) throws -> TestbedCommandResult {
        try TestbedEnvironment.runTestbed(arguments, in: directory)
    }
}

extension JSONValue {
    /// The elements of an array (empty for anything else).
    var elements: [JSONValue] { if case .array(let items) = self { items } else { [] } }
}
