import Foundation
import Libvirt
import Synchronization
import TestbedCore

extension Machine {
    // MARK: Commands

    /// Runs `argv` in the guest through the agent. Output streams stay apart.
    ///
    /// - Parameters:
    ///   - user: run as this user (name); `nil` runs as root.
    ///   - timeout: host-side deadline; the guest kills the command a little earlier.
    public func execute(
        _ argv: [String], env: [String: String] = [:], cwd: String? = nil, user: String? = nil,
        stdin: String? = nil, timeout: Duration? = nil
    ) async throws -> ExecResult {
        let timeout = timeout ?? deadlines.command
        var fields: [String: JSONValue] = ["argv": .array(argv.map(JSONValue.string))]
        if !env.isEmpty { fields["env"] = .object(env.mapValues(JSONValue.string)) }
        if let cwd { fields["cwd"] = .string(cwd) }
        if let user { fields["user"] = .string(user) }
        if let stdin { fields["stdin"] = .string(stdin) }
        fields["timeoutMs"] = .number(max(100, timeout.milliseconds * 0.9).rounded())
        let answer = try await request("exec", fields, timeout: timeout, what: "running \(Self.quote(argv))")
        do {
            return try ExecResult(agentResult: answer)
        } catch {
            throw context.failure(.agent, "running \(Self.quote(argv)): \(error)")
        }
    }

    /// Runs a command line, split into words as a shell would (quotes and
    /// backslashes respected). No shell runs in the guest: NodeOS has none.
    public func execute(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        try await execute(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs a command that must succeed; returns its stdout. Throws with the
    /// status, stdout and stderr otherwise.
    @discardableResult
    public func succeed(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> String {
        try await succeed(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs `argv`, which must succeed; returns its stdout.
    @discardableResult
    public func succeed(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> String {
        let result = try await execute(argv, user: user, timeout: timeout)
        guard result.succeeded else {
            throw context.failure(.commandFailed, "\(Self.quote(argv)) failed: \(result)\n\(result.transcript)")
        }
        return result.stdout
    }

    /// Runs a command that must fail (non-zero status or a signal); returns the result.
    @discardableResult
    public func fail(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        try await fail(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs `argv`, which must fail (non-zero status or a signal); returns the result.
    @discardableResult
    public func fail(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        let result = try await execute(argv, user: user, timeout: timeout)
        if result.succeeded {
            throw context.failure(.commandSucceeded, "\(Self.quote(argv)) succeeded but should have failed\n\(result.transcript)")
        }
        return result
    }

    /// Retries a command about once a second until it succeeds; returns its stdout.
    @discardableResult
    public func waitUntilSucceeds(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> String {
        try await waitUntilSucceeds(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Retries `argv` about once a second until it succeeds; returns its stdout.
    @discardableResult
    public func waitUntilSucceeds(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> String {
        try await waitUntilSucceeds(argv, user: user, timeout: timeout) { _ in true }.stdout
    }

    /// Retries `argv` about once a second until it succeeds and `accept`
    /// takes its result; returns that result. A stopped machine ends the wait
    /// at once; the timeout's error carries the last answer.
    public func waitUntilSucceeds(
        _ argv: [String], user: String? = nil, timeout: Duration? = nil, accept: @Sendable (ExecResult) -> Bool
    ) async throws -> ExecResult {
        let timeout = timeout ?? deadlines.command
        let deadline = ContinuousClock.now + timeout
        var last = "no answer"
        while ContinuousClock.now < deadline {
            do {
                let result = try await execute(argv, user: user, timeout: deadline - ContinuousClock.now)
                if result.succeeded, accept(result) { return result }
                last = "\(result)\n\(result.transcript)"
            } catch let error as MachineError where error.kind == .machineStopped {
                throw error
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .seconds(1))
        }
        throw context.failure(.timeout, "\(Self.quote(argv)) did not succeed within \(timeout.formattedSeconds); last: \(last)")
    }

    /// Reads a file from the guest.
    public func readFile(_ path: String, timeout: Duration? = nil) async throws -> Data {
        let answer = try await request("readFile", ["path": .string(path)], timeout: timeout ?? deadlines.command)
        guard let data = answer["data"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else {
            throw context.failure(.agent, "reading \(path): the agent sent no base64 data")
        }
        return data
    }

    /// Writes a file in the guest.
    public func writeFile(_ path: String, _ data: Data, mode: Int = 0o644, timeout: Duration? = nil) async throws {
        _ = try await request("writeFile", ["path": .string(path), "data": .string(data.base64EncodedString()), "mode": .number(Double(mode))],
                              timeout: timeout ?? deadlines.command)
    }

    /// Sends one agent request with a deadline; maps failures to ``MachineError``.
    ///
    /// While it waits, it also watches the agent's port: when the guest closes
    /// it (the agent died), the request fails then, not at the deadline.
    public func request(_ op: String, _ fields: [String: JSONValue] = [:], timeout: Duration? = nil, what: String? = nil) async throws -> JSONValue {
        let what = what ?? "agent '\(op)'"
        let agent = self.agent
        let domain = self.domain
        let timeout = timeout ?? deadlines.command
        let sent = ContinuousClock.now
        do {
            return try await withDeadline(timeout, what) {
                try await withThrowingTaskGroup(of: JSONValue.self) { group in
                    group.addTask { try await agent.request(op, fields) }
                    group.addTask {
                        try await AgentPortWatch.untilClosed(domain, channel: AgentProtocol.channelName)
                        throw AgentChannelClosed(reason: "the guest closed the agent port (\(AgentProtocol.channelName)) while the request was waiting: the agent is gone")
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next() else { throw CancellationError() }
                    return first
                }
            }
        } catch let error as AgentError {
            var failure = context.failure(.agent, "\(what): the agent answered \(error)")
            failure.agentCode = error.code
            throw failure
        } catch let error as AgentProtocolFailure {
            throw context.failure(.agent, "\(what): \(error.reason)")
        } catch let error as AgentChannelClosed {
            throw context.failure(.machineStopped, "\(what): \(error.reason)")
        } catch let error as TimeoutError {
            throw context.failure(.timeout, error.description + (await silenceNote(since: sent, timeout: timeout)))
        }
    }
}

extension Machine {
    // MARK: Ports

    /// Leads a port on the host's 127.0.0.1 (`hostPort`, or any free one) to
    /// `guestPort` in the guest, through the tunnel, so it works the same on
    /// a remote libvirt host. Needs ``MachineSpec/tunnel``; the forward ends
    /// with the machine.
    ///
    /// ```swift
    /// let web = try machine.forward(guestPort: 8080)
    /// let (body, _) = try await URLSession.shared.data(from: web.url.appendingPathComponent("health"))
    /// ```
    public nonisolated func forward(guestPort: Int, hostPort: Int = 0) throws -> PortForward {
        guard let tunnel else {
            throw context.failure(.testbed, "forwarding guest port \(guestPort): the machine has no tunnel (set MachineSpec.tunnel)")
        }
        let forward = try PortForward(tunnel: tunnel, guestPort: guestPort, hostPort: hostPort, connectTimeout: deadlines.command)
        shared.forwards.withLock { $0.append(forward) }
        if state.isFinished { forward.stop() }
        return forward
    }
}

extension Machine {
    // MARK: Links

    /// Cuts (`up: false`) or restores one of the machine's private links, as
    /// pulling or plugging its cable would: the guest sees its carrier go.
    public func setLink(_ name: String, up: Bool) async throws {
        guard let link = spec.links.first(where: { $0.name == name }) else {
            throw context.failure(.testbed, "no link '\(name)' on this machine (links: \(spec.links.map(\.name).joined(separator: ", ")))")
        }
        let domain = self.domain
        do {
            try await Blocking.run { try domain.updateDevice(xml: link.xml(up: up)) }
        } catch let error as LibvirtError {
            throw context.failure(.testbed, "setting link '\(name)' \(up ? "up" : "down"): \(error)")
        }
    }
}
