import Foundation
import Libvirt
import Synchronization
import TestbedCore

extension Machine {
    // MARK: Lifecycle

    /// Reboots cleanly through init and waits for the agent of the new boot.
    public func reboot(timeout: Duration? = nil) async throws {
        await saveServiceLogs()
        let before = agent.ready.count
        agent.expectNewBoot()
        _ = try await request("reboot", [:], timeout: deadlines.command)
        try await waitUntil(timeout: timeout ?? deadlines.agent, "waiting for the agent after a reboot") { [agent] in
            agent.ready.count > before
        }
        tunnel?.restart()
    }

    /// Shuts down cleanly through init (the agent's `shutdown`) and waits for
    /// the domain to stop; then saves the artifacts and frees the slot.
    public func shutdown(timeout: Duration? = nil) async throws {
        guard !state.isFinished else { return }
        await saveServiceLogs()
        let timeout = timeout ?? deadlines.shutdown
        do {
            _ = try await request("shutdown", [:], timeout: timeout)
        } catch let error as MachineError where error.kind == .machineStopped {
            // The channel may close before the answer arrives: the machine is going down.
        }
        do {
            try await waitUntil(timeout: timeout, "waiting for the machine to power off", failOnProblems: false) { [shared] in
                shared.state.withLock { $0.isStopped }
            }
        } catch {
            await finish(destroy: true)
            throw error
        }
        await finish(destroy: false)
    }

    /// Lets a machine started with ``MachineSpec/startsPaused`` run.
    public func resume() async throws {
        let domain = self.domain
        do {
            try await Blocking.run { try domain.resume() }
        } catch let error as LibvirtError {
            throw context.failure(.testbed, error.description)
        }
    }

    /// Pulls the plug: destroys the domain at once (no guest shutdown).
    public func crash() async {
        await finish(destroy: true)
    }

    /// Whether the domain has stopped.
    public var isStopped: Bool { state.isStopped }

    /// Where the machine is in its life.
    public nonisolated var state: MachineState { shared.state.withLock { $0 } }

    /// Stops the machine if it still runs (destroying it), then saves artifacts.
    /// Called by `withMachine` on every exit path.
    public func finish(destroy: Bool = true) async {
        if !state.isStopped { await saveServiceLogs() }
        let before = state
        guard shared.state.withLock({ $0.beginFinish() }) else { return }
        let domain = self.domain
        // A stopped event means QEMU is gone (and the transient domain with it).
        if !before.isStopped {
            _ = try? await Blocking.run {
                if domain.isActive() { try domain.destroy() }
            }
        }
        Cleanup.unregister(domain: domain)
        testbed.onLifecycle(of: name, nil)
        // The report first: whatever happens next, the artifacts say how it went.
        let report = bootReport(memory: nil)
        try? report.json.write(to: artifacts.appendingPathComponent("report.json"), atomically: true, encoding: .utf8)
        for forward in shared.forwards.withLock({ $0 }) { forward.stop() }
        tunnel?.close(reason: "the machine finished")
        await Self.closeStreams(console, agent, tunnel?.takeChannel() as? DomainStream, machine: name)
        if let root = testbed.embedRoot {
            Self.copyIfPresent(root.qemuLog(domain: name), to: artifacts.appendingPathComponent("qemu.log"))
        }
        if let log = LibvirtLog.file {
            Self.copyIfPresent(log, to: artifacts.appendingPathComponent("libvirt.log"))
        }
        // Uploaded volumes: written back into the local files, so the host reads what the guest wrote.
        for problem in await staged?.finish(download: true) ?? [] {
            shared.problems.withLock { $0.append("volumes: \(problem)") }
        }
        testbed.releaseName(name)
        Slots.machines.release()
    }

    /// Appends each service's log of this boot (the guest keeps it in RAM,
    /// `/var/log/services/NAME.log`) to `services/NAME.log` in the artifacts,
    /// under a line naming the boot. Best effort: a guest that cannot answer
    /// within a few seconds costs nothing more.
    func saveServiceLogs() async {
        guard !spec.serviceNames.isEmpty, agent.ready.count > 0 else { return }
        let folder = artifacts.appendingPathComponent("services")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let boot = agent.ready.bootID ?? "?"
        for name in spec.serviceNames {
            let text: Data
            do {
                text = try await readFile("/var/log/services/\(name).log", timeout: .seconds(10))
            } catch {
                text = Data("(not read: \(error))\n".utf8)
            }
            let file = folder.appendingPathComponent("\(name).log")
            if !FileManager.default.fileExists(atPath: file.path) { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
            guard let handle = try? FileHandle(forWritingTo: file) else { continue }
            _ = try? handle.seekToEnd()
            try? handle.write(contentsOf: Data("--- boot \(boot) ---\n".utf8) + text)
            try? handle.close()
        }
    }

    /// Closes the console and agent streams off the cooperative pool, waiting
    /// at most 10 s: a stuck libvirt stream must not keep a test from ending.
    static func closeStreams(_ console: Console, _ agent: AgentClient, _ tunnelChannel: DomainStream?, machine: String) async {
        final class Once: Sendable {
            private let done = Atomic<Bool>(false)
            func claim() -> Bool { !done.exchange(true, ordering: .acquiringAndReleasing) }
        }
        let once = Once()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                console.detach(reason: "the machine stopped")
                agent.close()
                tunnelChannel?.close()
                if once.claim() { continuation.resume() }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
                if once.claim() {
                    LibvirtLog.append("machine '\(machine)': closing its console, agent and tunnel streams took over 10 s; going on")
                    continuation.resume()
                }
            }
        }
    }

    static func copyIfPresent(_ source: String, to target: URL) {
        guard FileManager.default.fileExists(atPath: source) else { return }
        try? FileManager.default.removeItem(at: target)
        try? FileManager.default.copyItem(atPath: source, toPath: target.path)
    }
}
