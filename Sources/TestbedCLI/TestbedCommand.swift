import ArgumentParser
import Foundation
import Testbed

@main
struct TestbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testbed",
        abstract: "Boots NodeOS images under QEMU through libvirt and drives them.",
        discussion: """
            Machines run on libvirt's embedded QEMU driver unless --connect (or \
            NODEOS_LIBVIRT_URI) names another libvirt URI. Artifacts (console, agent \
            transcript, domain XML, QEMU and libvirt logs, report) go to \
            ./artifacts/<run-id>/<machine>/ unless --artifacts (or NODEOS_ARTIFACTS) says otherwise.
            """,
        subcommands: [Boot.self, Bench.self, RunScenarios.self])

    /// Bad input exits 2, as the README promises, whether a scenario file or
    /// an option is at fault (ArgumentParser's own status for a usage error is 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(2)
        }
    }
}

extension Accelerator: ExpressibleByArgument {}

struct MachineOptions: ParsableArguments {
    @Option(name: .customLong("image"), help: "The image folder (default: $NODEOS_IMAGE or ./build/image).")
    var imageDirectory: String?

    @Option(help: "The machine's name.")
    var name: String = "nodeos"

    @Option(help: "Guest memory in MiB.")
    var memory: Int = 256

    @Option(help: "Number of vCPUs.")
    var vcpus: Int = 1

    @Option(name: .customLong("param"), help: "An extra kernel parameter, e.g. nodeos.hostname=web (repeatable).")
    var parameters: [String] = []

    @Option(name: .customLong("accel"), help: "kvm or tcg (default: probed; KVM only where a probe boot reached init).")
    var accelerator: Accelerator?

    @Option(name: .customLong("connect"), help: "A libvirt URI (default: $NODEOS_LIBVIRT_URI or the embedded driver).")
    var uri: String?

    @Option(help: "Where artifacts go (default: $NODEOS_ARTIFACTS or ./artifacts).")
    var artifacts: String?

    @Flag(inversion: .prefixedNo, help: "Give the machine a user-mode NIC.")
    var network = true

    @Flag(help: "Capture the NIC's traffic into capture.pcap in the artifacts.")
    var capture = false

    func validate() throws {
        guard memory >= 64 else { throw ValidationError("--memory must be at least 64 (MiB)") }
        guard (1...8).contains(vcpus) else { throw ValidationError("--vcpus must be between 1 and 8") }
        guard network || !capture else { throw ValidationError("--capture needs a NIC: drop --no-network") }
    }

    func makeSpec() throws -> MachineSpec {
        let image = try imageDirectory.map { try NodeOSImage(directory: URL(fileURLWithPath: $0)) } ?? NodeOSImage.load()
        var spec = MachineSpec(name: name, image: image)
        spec.memoryMiB = memory
        spec.vcpus = vcpus
        spec.kernelParameters = parameters
        spec.accelerator = accelerator
        spec.capture = capture
        spec.network = network
        return spec
    }

    func makeTestbed() async throws -> Testbed {
        let run = try ArtifactsRun(base: artifacts.map { URL(fileURLWithPath: $0) } ?? ArtifactsRun.defaultBase)
        return try await Testbed(uri: uri ?? Testbed.configuredURI, artifacts: run)
    }
}

struct Boot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boots a NodeOS machine and attaches its console, or prints its boot report.",
        discussion: """
            Without --json the serial console is attached to this terminal. Press \
            Ctrl-] to detach: the machine then shuts down cleanly (through the \
            agent) and the testbed exits. Ctrl-C is passed to the guest.

            With --json the machine boots until its agent is ready, the boot report \
            (phases in milliseconds since host start, memory, accelerator, versions) \
            is printed as JSON, and the machine shuts down cleanly.
            """)

    @OptionGroup var options: MachineOptions

    @Flag(help: "Boot, print the boot report as JSON, shut down.")
    var json = false

    @Option(help: "Seconds to wait for the agent (default: scaled by the accelerator).")
    var timeout: Double?

    func run() async throws {
        let spec = try options.makeSpec()
        let testbed = try await options.makeTestbed()
        do {
            if json {
                try await bootReport(spec, testbed)
            } else {
                try await interactive(spec, testbed)
            }
        } catch {
            await testbed.close()
            throw error
        }
        await testbed.close()
    }

    private func bootReport(_ spec: MachineSpec, _ testbed: Testbed) async throws {
        let report = try await Machine.with(spec, in: testbed, agentTimeout: timeout.map { .milliseconds(Int64($0 * 1000)) }) { machine in
            let report = await machine.bootReport(memory: try await machine.memory())
            try await machine.shutdown()
            return report
        }
        print(report.json)
    }

    private func interactive(_ spec: MachineSpec, _ testbed: Testbed) async throws {
        try await Machine.with(spec, in: testbed, waitForAgent: false) { machine in
            FileHandle.standardError.write(Data("testbed: console of '\(machine.name)' attached; Ctrl-] detaches and shuts the machine down\r\n".utf8))
            await attachConsole(machine) {
                FileHandle.standardError.write(Data("\ntestbed: detached; shutting '\(machine.name)' down\n".utf8))
                guard !(await machine.isStopped) else { return }
                do {
                    try await machine.shutdown(timeout: machine.deadlines.shutdown)
                } catch {
                    FileHandle.standardError.write(Data("testbed: clean shutdown failed, destroying: \(error)\n".utf8))
                }
            }
            FileHandle.standardError.write(Data("testbed: artifacts in \(machine.artifacts.path)\n".utf8))
        }
    }
}
