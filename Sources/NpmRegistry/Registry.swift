// The npm registry a test serves to its machines (and to the host's npm).

import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// An npm registry over a folder of package sources, on loopback at a free port.
///
/// It speaks what the npm client needs to install: packuments (scoped names
/// too), dist-tags, tarballs with `shasum` and `integrity`; it records every
/// request, and it can be made to fail on purpose.
///
/// ```swift
/// try await Registry.withRegistry(packages: fixtures) { registry in
///     // host: npm install --registry \(registry.url) @nodeos/hello-cli
///     // guest: the same port through QEMU's user-mode gateway, registry.guestURL
///     try await registry.inject(.corruptTarball, for: "@nodeos/left-pad")
///     #expect(registry.tarballRequests.count == 1)
/// }
/// ```
///
/// Tarball URLs in packuments use the `Host` the request came in with, so one
/// registry serves the host (127.0.0.1:port) and guests (10.0.2.2:port) alike.
public actor Registry {
    /// The address the guest of a QEMU user-mode (slirp) NIC uses for the host's loopback.
    public static let guestGatewayHost = "10.0.2.2"

    /// The address it listens on (loopback only by default).
    public nonisolated let host: String
    public nonisolated let port: Int
    /// `http://127.0.0.1:<port>`, for the host.
    public nonisolated let url: URL
    /// `http://10.0.2.2:<port>`, for a guest behind a user-mode NIC.
    public nonisolated let guestURL: URL
    /// What it serves.
    public nonisolated let catalog: Catalog

    private let shared: Shared
    private var state: State
    /// The last lifecycle change (down, up, stop); each waits for the one before,
    /// so `state` never changes under a change in progress.
    private var lastTransition: Task<Void, any Error>?

    private enum State {
        case running(Listener)
        case down
        case stopped
    }

    private init(host: String, listener: Listener, shared: Shared) {
        self.host = host
        self.port = listener.port
        self.url = URL(string: "http://\(host):\(listener.port)")!
        self.guestURL = URL(string: "http://\(Self.guestGatewayHost):\(listener.port)")!
        self.catalog = shared.catalog
        self.shared = shared
        self.state = .running(listener)
    }

    /// Loads the packages under `packages` and starts listening.
    ///
    /// - Parameters:
    ///   - packages: a folder of `<name>/<version>/package.json` (scoped:
    ///     `@scope/<name>/<version>/`) and ready `<name>/<version>.tgz` files.
    ///   - host: the address to listen on; keep the default, loopback.
    ///   - port: 0 for a free port.
    public static func start(packages: URL, host: String = "127.0.0.1", port: Int = 0) async throws -> Registry {
        // Reading and packing the folder blocks (files, tar for ready tarballs): off the cooperative pool.
        let catalog = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Catalog.load(from: packages) })
            }
        }
        let shared = Shared(catalog: catalog)
        let listener = try await Listener.start(host: host, port: port, shared: shared)
        return Registry(host: host, listener: listener, shared: shared)
    }

    /// Runs `body` with a started registry and stops it afterwards, also when
    /// `body` throws or is cancelled.
    public static func withRegistry<T: Sendable>(
        packages: URL,
        host: String = "127.0.0.1",
        port: Int = 0,
        _ body: (Registry) async throws -> T
    ) async throws -> T {
        let registry = try await start(packages: packages, host: host, port: port)
        do {
            let result = try await body(registry)
            await registry.stop()
            return result
        } catch {
            await registry.stop()
            throw error
        }
    }

    /// Stops listening for good. Idempotent; completes even when the caller
    /// is cancelled, so the port is always given back.
    public func stop() async {
        try? await serially { await self.shutDown() }
    }

    // MARK: Faults

    /// Makes the registry misbehave from now on, for `package` or for every
    /// package (nil). `.down` closes the listening socket (registry-wide).
    public func inject(_ fault: Fault, for package: String? = nil) async throws {
        if fault == .down {
            try await serially { try await self.goDown() }
        } else {
            shared.state.withLock { $0.rules.append(FaultRule(fault: fault, package: package)) }
        }
    }

    /// Clears every fault; after `.down`, listens again on the same port.
    public func clearFaults() async throws {
        shared.state.withLock { $0.rules.removeAll() }
        try await serially { try await self.comeUp() }
    }

    /// Runs a lifecycle change after the previous one has finished.
    private func serially(_ change: @escaping @Sendable () async throws -> Void) async throws {
        let previous = lastTransition
        let next = Task {
            _ = await previous?.result
            try await change()
        }
        lastTransition = next
        try await next.value
    }

    private func goDown() async throws {
        switch state {
        case .stopped: throw RegistryError.notRunning("go down")
        case .down: return
        case .running(let listener):
            state = .down
            await listener.stop()
        }
    }

    private func comeUp() async throws {
        switch state {
        case .stopped: throw RegistryError.notRunning("come back up")
        case .running: return
        case .down: state = .running(try await Listener.start(host: host, port: port, shared: shared))
        }
    }

    private func shutDown() async {
        let previous = state
        state = .stopped
        if case .running(let listener) = previous {
            await listener.stop()
        }
    }

    /// The faults in force (but `.down`), in the order they were injected.
    public nonisolated var faults: [(fault: Fault, package: String?)] {
        shared.state.withLock { $0.rules.map { ($0.fault, $0.package) } }
    }

    // MARK: The request log

    /// Every request answered so far, oldest first.
    public nonisolated var requests: [RecordedRequest] {
        shared.state.withLock { $0.log }
    }

    /// The tarball downloads among `requests`.
    public nonisolated var tarballRequests: [RecordedRequest] {
        requests.filter(\.isTarball)
    }

    /// Forgets the requests recorded so far (e.g. between a cold and a warm install).
    public nonisolated func clearRequests() {
        shared.state.withLock { $0.log.removeAll() }
    }
}

/// Runs `body` with a registry over `packages` on a free loopback port, and
/// stops it afterwards, also when `body` throws or is cancelled.
///
/// ```swift
/// try await withRegistry(packages: URL(fileURLWithPath: "scenarios/packages")) { registry in
///     try await machine.succeed("npm install -g --registry \(registry.guestURL) @nodeos/hello-cli")
///     #expect(registry.tarballRequests.allSatisfy { $0.host == "10.0.2.2:\(registry.port)" })
/// }
/// ```
public func withRegistry<T: Sendable>(
    packages: URL,
    host: String = "127.0.0.1",
    port: Int = 0,
    _ body: (Registry) async throws -> T
) async throws -> T {
    try await Registry.withRegistry(packages: packages, host: host, port: port, body)
}

/// One request as the registry answered it; `Codable`, so a test can keep the log as an artifact.
public struct RecordedRequest: Sendable, Codable, CustomStringConvertible {
    public let method: String
    /// The path as sent, percent-encoding and query included.
    public let path: String
    /// The `Host` header: tells host requests (127.0.0.1) from guest ones (10.0.2.2).
    public let host: String?
    /// The package it was about, if any.
    public let package: String?
    public let isTarball: Bool
    public let status: Int
    /// Body bytes sent (for a truncated tarball, what was actually sent).
    public let bytes: Int
    public let date: Date
    /// From receiving the request to having the response ready (includes `.slow`).
    public let duration: Duration

    public var description: String { "\(method) \(path) → \(status) (\(bytes) bytes)" }
}

/// State the request handlers share with the actor: loaded once, locked briefly.
final class Shared: Sendable {
    struct State {
        var rules: [FaultRule] = []
        var log: [RecordedRequest] = []
    }

    let catalog: Catalog
    let state = Mutex(State())

    init(catalog: Catalog) { self.catalog = catalog }

    func record(_ request: RecordedRequest) {
        state.withLock { $0.log.append(request) }
    }
}

/// One running Hummingbird server; `.down` stops it, clearing starts another.
private struct Listener: Sendable {
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    static func start(host: String, port: Int, shared: Shared) async throws -> Listener {
        let (bound, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "nodeos.registry")
        logger.logLevel = .warning
        let app = Application(
            responder: RegistryResponder(shared: shared),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "nodeos-testbed-registry"),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        for await boundPort in bound {
            return Listener(port: boundPort, group: group, task: task)
        }
        // The stream ended without a port: the server never came up.
        do {
            try await task.value
            throw RegistryError.bindFailed(host: host, port: port, cause: CancellationError())
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError.bindFailed(host: host, port: port, cause: error)
        }
    }

    /// Closes the listening socket, lets requests in flight finish (for up to
    /// `grace`), then cancels what is left, and waits until it is all gone.
    func stop(grace: Duration = .seconds(5)) async {
        await group.triggerGracefulShutdown()
        let task = self.task
        let watchdog = Task {
            try await Task.sleep(for: grace)
            task.cancel()
        }
        _ = try? await task.value
        watchdog.cancel()
    }
}

/// Answers one request from the catalog, the fault rules in force, and logs it.
private struct RegistryResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let shared: Shared

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let date = Date()
        let rawPath = request.head.path ?? request.uri.string
        let route = Route(method: request.method.rawValue, rawPath: rawPath)
        let plan = FaultPlan(route: route, rules: shared.state.withLock { $0.rules })
        if plan.delay > .zero {
            try await Task.sleep(for: plan.delay)
        }
        let authority = request.head.authority
        let baseURL = "http://\(authority ?? "127.0.0.1")"
        let (response, bytes) = answer(route, plan: plan, baseURL: baseURL)
        shared.record(
            RecordedRequest(
                method: request.method.rawValue, path: rawPath, host: authority, package: route.packageName,
                isTarball: route.isTarball, status: response.status.code, bytes: bytes, date: date,
                duration: ContinuousClock.now - started))
        return response
    }

    private func answer(_ route: Route, plan: FaultPlan, baseURL: String) -> (Response, Int) {
        if let status = plan.status {
            return json(#"{"error":"injected fault: HTTP \#(status)"}"#, status: .init(code: status))
        }
        if plan.garbage {
            return json(FaultPlan.garbageBody)
        }
        let catalog = shared.catalog
        switch route {
        case .packument(let name):
            guard let document = catalog.packument(for: name, baseURL: baseURL) else { return notFound() }
            return json(document)
        case .version(let name, let versionOrTag):
            guard let document = catalog.versionDocument(for: name, versionOrTag: versionOrTag, baseURL: baseURL)
            else { return notFound() }
            return json(document)
        case .tarball(let name, let filename):
            guard let entry = catalog.version(of: name, tarballFilename: filename) else { return notFound() }
            return tarball(entry.tarball, damage: plan.damage)
        case .npmService(let path):
            // Audit, ping, whoami…: an empty object is a valid "nothing to report".
            if path.hasPrefix("/-/npm/v1/security/") || path.hasPrefix("/-/ping") || path == "/-/v1/search" {
                return json("{}")
            }
            return notFound()
        case .notFound:
            return notFound()
        }
    }

    private func tarball(_ bytes: [UInt8], damage: FaultPlan.TarballDamage) -> (Response, Int) {
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        switch damage {
        case .none:
            return (Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes))), bytes.count)
        case .corrupt:
            let damaged = FaultPlan.corrupt(bytes)
            return (Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: damaged))), damaged.count)
        case .truncate:
            let half = Array(bytes.prefix(bytes.count / 2))
            let body = ResponseBody(contentLength: bytes.count) { writer in
                try await writer.write(ByteBuffer(bytes: half))
                // Ending the body short makes the server drop the connection.
                throw TruncatedOnPurpose()
            }
            return (Response(status: .ok, headers: headers, body: body), half.count)
        }
    }

    private func json(_ text: String, status: HTTPResponse.Status = .ok) -> (Response, Int) {
        json(Data(text.utf8), status: status)
    }

    private func json(_ data: Data, status: HTTPResponse.Status = .ok) -> (Response, Int) {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return (Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data))), data.count)
    }

    private func notFound() -> (Response, Int) {
        json(#"{"error":"not found"}"#, status: .notFound)
    }
}

private struct TruncatedOnPurpose: Error {}
