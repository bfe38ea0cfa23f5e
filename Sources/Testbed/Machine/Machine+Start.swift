import Foundation
import Libvirt
import Synchronization
import TestbedCore

extension Machine {
    // MARK: Starting

    /// Starts a machine: writes its domain XML, starts the domain paused,
    /// attaches the console and agent channel, then lets it run.
    ///
    /// Waits for a free slot under the process-wide ``Slots/machines`` first.
    public static func start(_ spec: MachineSpec, in testbed: Testbed) async throws -> Machine {
        let accelerator: Accelerator
        if let chosen = spec.accelerator { accelerator = chosen } else { accelerator = try await testbed.accelerator(for: spec.image) }
        try await Slots.machines.acquire(what: "waiting for a machine slot (NODEOS_MAX_MACHINES sets the bound)")
        let name = testbed.reserveName(spec.name)
        var staged: StagedVolumes?
        do {
            // On a remote URI the volumes travel through libvirt's storage API first.
            staged = try await testbed.stageVolumes(of: spec, machine: name)
            // A caller that gave up while this one waited (a step's watchdog) gets no machine.
            try Task.checkCancellation()
            return try await start(spec, name: name, accelerator: accelerator, staged: staged, in: testbed)
        } catch {
            _ = await staged?.finish(download: false)
            testbed.releaseName(name)
            Slots.machines.release()
            throw error
        }
    }

    static func start(_ spec: MachineSpec, name: String, accelerator: Accelerator, staged: StagedVolumes?, in testbed: Testbed) async throws -> Machine {
        var booted = staged?.spec ?? spec
        // init seals its console lines with this key, so nothing else printed there passes for them.
        let sealKey = SealedLineReader.newKeyHex()
        booted.kernelParameters.append("nodeos.seal=\(sealKey)")
        let folder = try testbed.artifacts.folder(for: name)
        let context = FailureContext(machine: name, artifacts: folder.path)
        let capture = spec.capture ? folder.appendingPathComponent("capture.pcap").path : nil
        let xml = booted.domainSpec(name: name, accelerator: accelerator, capturePath: capture).xml
        try xml.write(to: folder.appendingPathComponent("domain.xml"), atomically: true, encoding: .utf8)

        let deadlines = Deadlines(accelerator: accelerator)
        let failures = spec.checks.filter { $0.source == .kernel }.map(\.pattern)
        let console = Console(logPath: folder.appendingPathComponent("console.log").path, context: context,
                              defaultFailures: failures, defaultTimeout: deadlines.console)
        context.bind(console.log)
        let shared = Shared()
        let hostStart = ContinuousClock.now
        let startedAt = Date()
        let agent = AgentClient(transcriptPath: folder.appendingPathComponent("agent.jsonl").path, hostStart: hostStart)
        let tunnel = spec.tunnel ? Tunnel(targets: spec.tunnelTargets, log: { LibvirtLog.append("machine '\(name)': \($0)") }) : nil

        let checks = CompiledChecks(spec.checks)
        let allowedGuestErrors = spec.allowedGuestErrors
        let seal = Mutex(SealedLineReader(key: Digest.bytes(hex: sealKey) ?? []))
        console.log.onLine { line, _, at in
            for name in checks.firing(on: line, from: .kernel) {
                shared.problems.withLock { $0.append("\(name): \(line)") }
            }
            switch seal.withLock({ $0.read(line) }) {
            case .trusted(let initLine):
                let ms = (at - hostStart).milliseconds
                shared.timeline.withLock { $0.consume(line: initLine, hostMilliseconds: ms) }
                for name in checks.firing(on: initLine, from: .initLines) {
                    shared.problems.withLock { $0.append("\(name): \(initLine)") }
                }
                if case .error(let step, let message)? = GuestLine.parse(initLine), !allowedGuestErrors.contains(step) {
                    shared.problems.withLock { $0.append("nodeos error \(step): \(message)") }
                }
            case .forged(let why):
                shared.forgedLines.withLock { $0 += 1 }
                LibvirtLog.append("machine '\(name)': ignored a console line that is not init's (\(why)): \(line.prefix(200))")
            case .other:
                break
            }
            shared.notifier.notify()
        }
        agent.onEvent { event, body in
            switch event {
            case "kmsg":
                guard let text = body["text"]?.stringValue else { return }
                for name in checks.firing(on: text, from: .kernel) {
                    shared.problems.withLock { $0.append("\(name) (kernel log): \(text)") }
                }
            case "kmsg-dropped":
                let count = body["count"]?.doubleValue.map { Int($0) } ?? 0
                LibvirtLog.append("machine '\(name)': the guest dropped \(count) kernel log records (over its rate bound)")
            default:
                return
            }
            shared.notifier.notify()
        }
        testbed.onLifecycle(of: name) { [weak console, weak agent, weak tunnel] event in
            LibvirtLog.append("lifecycle \(event)")
            guard event.isStopped else { return }
            shared.state.withLock { $0.stop("the domain stopped (\(event))") }
            console?.log.close(reason: "the machine stopped")
            agent?.fail("the machine stopped")
            tunnel?.close(reason: "the machine stopped")
            shared.notifier.notify()
            // The console stream normally ends by itself once drained; make sure
            // it does not keep the pty's lock file past the machine's end.
            let stoppedConsole = console
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) { stoppedConsole?.closeStream() }
        }
        let notifyOnAgent = agent.notifier
        _ = notifyOnAgent

        let connection = testbed.connection
        let domain: Domain
        do {
            domain = try await Blocking.run { () throws -> Domain in
                let domain = try connection.createDomain(xml: xml, name: name, startPaused: true)
                let created = ContinuousClock.now
                Cleanup.register(domain: domain)
                do {
                    let consoleStream = try openConsole(domain, connection)
                    try console.attach(consoleStream)
                    if spec.domainSpec(name: name, accelerator: accelerator, capturePath: nil).agentChannel {
                        let channel = try connection.newStream()
                        try domain.openChannel(AgentProtocol.channelName, channel)
                        try agent.attach(channel)
                    }
                    if let tunnel {
                        let channel = try connection.newStream()
                        try domain.openChannel(TunnelProtocol.channelName, channel)
                        tunnel.attach(channel: channel) { bytes in try channel.send(bytes) }
                        try channel.startReceiving(onData: { tunnel.receive($0) }, onEnd: { _ in tunnel.close(reason: "the guest closed the tunnel") })
                    }
                    let attached = ContinuousClock.now
                    if !spec.startsPaused { try domain.resume() }
                    LibvirtLog.append(String(format: "machine '%@': domain created %.0f ms after host start, console and agent attached in %.0f ms, resumed in %.0f ms",
                                             name, (created - hostStart).milliseconds, (attached - created).milliseconds, (ContinuousClock.now - attached).milliseconds))
                } catch {
                    try? domain.destroy()
                    Cleanup.unregister(domain: domain)
                    throw error
                }
                return domain
            }
        } catch let error as LibvirtError {
            testbed.onLifecycle(of: name, nil)
            console.detach(reason: "the machine did not start")
            agent.close()
            tunnel?.close(reason: "the machine did not start")
            (tunnel?.takeChannel() as? DomainStream)?.close()
            if let root = testbed.embedRoot { copyIfPresent(root.qemuLog(domain: name), to: folder.appendingPathComponent("qemu.log")) }
            throw context.failure(.testbed, error.description)
        }
        return Machine(name: name, spec: spec, console: console, artifacts: folder, accelerator: accelerator, hostStart: hostStart,
                       startedAt: startedAt, testbed: testbed, domain: domain, agent: agent, tunnel: tunnel, shared: shared,
                       context: context, staged: staged)
    }

    /// Opens the serial console, retrying while another machine's console
    /// stream still holds the lock file of the pty number this one got.
    static func openConsole(_ domain: Domain, _ connection: Connection) throws -> DomainStream {
        for attempt in 1...50 {
            let stream = try connection.newStream()
            let failure: LibvirtError
            do {
                try domain.openConsole(stream)
                return stream
            } catch {
                failure = error
            }
            stream.close()
            guard failure.message.contains("locked by lock file"), attempt < 50 else { throw failure }
            LibvirtLog.append("machine '\(domain.name)': console busy (\(failure.message)); retrying")
            if let stale = StalePtyLock(message: failure.message), stale.isStale {
                LibvirtLog.append("machine '\(domain.name)': removing \(stale.lockFile): process \(stale.pid) no longer has \(stale.device) open")
                try? FileManager.default.removeItem(atPath: stale.lockFile)
                continue
            }
            usleep(100_000)
        }
        throw TestbedError.setup("opening the console of '\(domain.name)': gave up")
    }
}
