import Foundation
import TestbedCore

extension Machine {
    // MARK: Services

    /// Every configured service, as init sees it now.
    public func services() async throws -> [ServiceStatus] {
        let answer = try await request("services", [:], timeout: deadlines.command)
        guard case .array(let entries)? = answer["services"] else { throw context.failure(.agent, "services: the agent sent no list") }
        return entries.compactMap(ServiceStatus.init(agent:))
    }

    /// One service, or a failure naming the ones there are.
    public func service(_ name: String) async throws -> ServiceStatus {
        let all = try await services()
        guard let found = all.first(where: { $0.name == name }) else {
            throw context.failure(.commandFailed, "no service '\(name)' on this machine (services: \(all.map(\.name).joined(separator: ", ")))")
        }
        return found
    }

    /// Stops a service (SIGTERM to its group, SIGKILL after 5 s); it stays stopped.
    @discardableResult
    public func stopService(_ name: String) async throws -> ServiceStatus { try await serviceOp("serviceStop", name) }

    /// Starts a stopped, exited or crash-looping service.
    @discardableResult
    public func startService(_ name: String) async throws -> ServiceStatus { try await serviceOp("serviceStart", name) }

    @discardableResult
    public func restartService(_ name: String) async throws -> ServiceStatus { try await serviceOp("serviceRestart", name) }

    private func serviceOp(_ op: String, _ name: String) async throws -> ServiceStatus {
        let answer = try await request(op, ["name": .string(name)], timeout: deadlines.command)
        guard let status = ServiceStatus(agent: answer) else { throw context.failure(.agent, "\(op) \(name): the agent's answer is not a service entry") }
        return status
    }

    /// Whether some socket in the guest listens on TCP `port`.
    public func isListening(_ port: Int) async throws -> Bool {
        let answer = try await request("listening", ["port": .number(Double(port))], timeout: deadlines.command)
        return answer["listening"]?.boolValue ?? false
    }

    /// Waits until the service is in `state` (by default running, and with
    /// `port`, something listens there). Waiting for it to run, a service
    /// that is exited, stopped or in a crash loop fails at once.
    @discardableResult
    public func waitForService(
        _ name: String, toBe wanted: ServiceStatus.State = .running, listeningOn port: Int? = nil, timeout: Duration? = nil
    ) async throws -> ServiceStatus {
        let timeout = timeout ?? deadlines.command
        let deadline = ContinuousClock.now + timeout
        var last: ServiceStatus?
        while ContinuousClock.now < deadline {
            // init starts the services once the configured packages are in:
            // until then the list is empty.
            let all = try await services()
            guard let status = all.first(where: { $0.name == name }) else {
                if !all.isEmpty { throw context.failure(.commandFailed, "no service '\(name)' on this machine (services: \(all.map(\.name).joined(separator: ", ")))") }
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            last = status
            if wanted == .running, status.state == .crashLoop || status.state == .exited || status.state == .stopped {
                throw context.failure(.commandFailed, "service \(status) while waiting for it to run")
            }
            if status.state == wanted, wanted != .running {
                return status
            }
            if status.state == .running, wanted == .running {
                if let port {
                    if try await isListening(port) { return status }
                } else {
                    return status
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw context.failure(.timeout, "service '\(name)' was not \(wanted.rawValue)\(port.map { " and listening on port \($0)" } ?? "") within \(timeout.formattedSeconds); last: \(last.map(\.description) ?? "no answer")")
    }
}
