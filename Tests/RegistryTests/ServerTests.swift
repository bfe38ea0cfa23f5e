// The registry over HTTP, with curl: loopback only, Host-relative tarball
// URLs, 404s, npm's side endpoints, the request log and each fault.

import Foundation
import Testing
@testable import NpmRegistry

@Suite("Registry server")
struct ServerTests {
    @Test("listens on 127.0.0.1 only, at a free port; guestURL is the slirp gateway")
    func loopbackOnly() async throws {
        try await Registry.withRegistry(packages: fixturePackages) { registry in
            #expect(registry.port > 0)
            #expect(registry.url.absoluteString == "http://127.0.0.1:\(registry.port)")
            #expect(registry.guestURL.absoluteString == "http://10.0.2.2:\(registry.port)")
            // The kernel's own table of listening sockets: local address 127.0.0.1, nothing else.
            let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
            let rows: [[Substring]] = table.split(separator: "\n").dropFirst().map { $0.split(separator: " ") }
            let listening: [String] = rows.filter { $0.count > 3 && $0[3] == "0A" }.map { String($0[1]) }  // 0A: LISTEN
            let portHex = String(format: "%04X", registry.port)
            #expect(listening.filter { $0.hasSuffix(":" + portHex) } == ["0100007F:" + portHex])
            let tcp6 = (try? String(contentsOfFile: "/proc/net/tcp6", encoding: .utf8)) ?? ""
            #expect(!tcp6.contains(":" + portHex + " 00000000000000000000000000000000:0000 0A"))
        }
    }

    @Test("tarball URLs follow the Host header: the host and a guest each get their own")
    func hostRelativeTarballs() async throws {
        try await withRegistry(packages: fixturePackages) { registry in
            let viaHost = try await httpGet("\(registry.url)/@nodeos%2fhello-cli")
            #expect(viaHost.status == 200)
            let guestHost = "10.0.2.2:\(registry.port)"
            let viaGuest = try await httpGet("\(registry.url)/@nodeos%2fhello-cli", host: guestHost)
            func tarballURL(_ data: Data) throws -> String? {
                let versions = try jsonObject(data)["versions"] as? [String: Any]
                return ((versions?["1.0.0"] as? [String: Any])?["dist"] as? [String: Any])?["tarball"] as? String
            }
            #expect(try tarballURL(viaHost.body) == "\(registry.url)/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz")
            #expect(try tarballURL(viaGuest.body) == "http://\(guestHost)/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz")
            #expect(registry.requests.map(\.host) == ["127.0.0.1:\(registry.port)", guestHost])

            let tgz = try await httpGet("\(registry.url)/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz")
            #expect(tgz.status == 200)
            #expect([UInt8](tgz.body) == registry.catalog.version(of: "@nodeos/hello-cli", tarballFilename: "hello-cli-1.0.0.tgz")?.tarball)
            #expect(registry.tarballRequests.count == 1)
            #expect(registry.tarballRequests.first?.bytes == tgz.body.count)
        }
    }

    @Test("unknown packages are a JSON 404; npm's audit and ping are harmless")
    func notFoundAndSideEndpoints() async throws {
        try await Registry.withRegistry(packages: fixturePackages) { registry in
            let missing = try await httpGet("\(registry.url)/no-such-package")
            #expect(missing.status == 404)
            #expect(String(decoding: missing.body, as: UTF8.self) == #"{"error":"not found"}"#)
            #expect(try await httpGet("\(registry.url)/pad-lite/-/pad-lite-9.9.9.tgz").status == 404)
            #expect(try await httpGet("\(registry.url)/-/ping?write=true").status == 200)
            let audit = try await run("curl", ["-s", "-w", "%{http_code}", "-X", "POST", "-d", "{}", "\(registry.url)/-/npm/v1/security/advisories/bulk"])
            #expect(audit.stdout == "{}200")
            #expect(registry.requests.map(\.status) == [404, 404, 200, 200])
            // The log is Codable, to keep as a test artifact.
            let log = try JSONDecoder().decode([RecordedRequest].self, from: JSONEncoder().encode(registry.requests))
            #expect(log.map(\.path) == registry.requests.map(\.path))
        }
    }

    @Test("faults: HTTP errors scoped to a package, slow, corrupt and truncated tarballs, cleared at runtime")
    func faults() async throws {
        try await Registry.withRegistry(packages: fixturePackages) { registry in
            let tgzPath = "\(registry.url)/pad-lite/-/pad-lite-1.1.0.tgz"
            let good = try #require(registry.catalog.version(of: "pad-lite", tarballFilename: "pad-lite-1.1.0.tgz")).tarball

            try await registry.inject(.httpError(500), for: "pad-lite")
            #expect(try await httpGet("\(registry.url)/pad-lite").status == 500)
            #expect(try await httpGet("\(registry.url)/ansi-mini").status == 200)

            try await registry.clearFaults()
            try await registry.inject(.corruptTarball)
            let corrupt = try await httpGet(tgzPath)
            #expect(corrupt.status == 200 && corrupt.body.count == good.count && [UInt8](corrupt.body) != good)

            try await registry.clearFaults()
            try await registry.inject(.truncatedTarball, for: "pad-lite")
            let truncated = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{size_download}", tgzPath])
            #expect(truncated.status != 0, "curl sees the connection close early")
            #expect(Int(truncated.stdout) == good.count / 2)

            try await registry.clearFaults()
            try await registry.inject(.slow(.milliseconds(300)))
            let slow = try await run("curl", ["-s", "-o", "/dev/null", tgzPath])
            #expect(slow.duration >= .milliseconds(300))
            #expect(registry.requests.last.map { $0.duration >= .milliseconds(300) } == true)
            try await registry.clearFaults()
            #expect(registry.faults.isEmpty)
        }
    }

    @Test("down refuses connections on the same port; clearing listens again")
    func down() async throws {
        try await Registry.withRegistry(packages: fixturePackages) { registry in
            try await registry.inject(.down)
            let refused = try await run("curl", ["-s", "-o", "/dev/null", "\(registry.url)/pad-lite"])
            #expect(refused.status == 7, "curl exit 7: failed to connect")
            try await registry.clearFaults()
            #expect(try await httpGet("\(registry.url)/pad-lite").status == 200)
        }
    }

    @Test("down and up from many tasks at once: changes run one at a time and it ends up listening")
    func concurrentLifecycle() async throws {
        try await Registry.withRegistry(packages: fixturePackages) { registry in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<10 {
                    group.addTask { i % 2 == 0 ? try await registry.inject(.down) : try await registry.clearFaults() }
                }
                try await group.waitForAll()
            }
            try await registry.clearFaults()
            #expect(try await httpGet("\(registry.url)/pad-lite").status == 200)
        }
    }

    @Test("a stopped registry refuses, and cannot be brought back")
    func stop() async throws {
        let registry = try await Registry.start(packages: fixturePackages)
        await registry.stop()
        await registry.stop()
        #expect(try await run("curl", ["-s", "-o", "/dev/null", "\(registry.url)/pad-lite"]).status == 7)
        await #expect(throws: RegistryError.self) { try await registry.clearFaults() }
    }
}
