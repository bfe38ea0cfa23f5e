// Packuments, routes, semver and fault plans: pure logic, no server.

import Foundation
import Testing
@testable import NpmRegistry
import TestbedCore

@Suite("Catalog")
struct CatalogTests {
    @Test("a packument has name, dist-tags, versions with dist, and time")
    func packumentShape() throws {
        let catalog = try Catalog.load(from: fixturePackages)
        let data = try #require(catalog.packument(for: "@nodeos/hello-cli", baseURL: "http://10.0.2.2:4873"))
        let doc = try jsonObject(data)
        #expect(doc["name"] as? String == "@nodeos/hello-cli")
        #expect(doc["_id"] as? String == "@nodeos/hello-cli")
        #expect((doc["dist-tags"] as? [String: String])?["latest"] == "1.0.0")
        let version = try #require((doc["versions"] as? [String: Any])?["1.0.0"] as? [String: Any])
        #expect(version["name"] as? String == "@nodeos/hello-cli")
        #expect(version["version"] as? String == "1.0.0")
        #expect((version["bin"] as? [String: String])?["hello"] == "bin/hello.js")
        #expect((version["dependencies"] as? [String: String])?["@nodeos/greeting"] == "^1.0.0")
        let dist = try #require(version["dist"] as? [String: String])
        #expect(dist["tarball"] == "http://10.0.2.2:4873/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz")
        #expect(dist["shasum"]?.count == 40)
        #expect(dist["integrity"]?.hasPrefix("sha512-") == true)
        let time = try #require(doc["time"] as? [String: String])
        #expect(time["1.0.0"] != nil && time["created"] != nil && time["modified"] != nil)
        // Reproducible: the same folder gives the same document.
        #expect(try Catalog.load(from: fixturePackages).packument(for: "@nodeos/hello-cli", baseURL: "http://x") ==
            catalog.packument(for: "@nodeos/hello-cli", baseURL: "http://x"))
    }

    @Test("shasum and integrity are the SHA-1 and SHA-512 of the bytes served")
    func digestsMatchTarball() async throws {
        let catalog = try Catalog.load(from: fixturePackages)
        for entry in catalog.allVersions {
            let sha1 = try await run("sha1sum", [], input: entry.tarball).stdout.prefix(40)
            #expect(entry.shasum == String(sha1), "\(entry.name)@\(entry.version)")
            let hex = Array(try await run("sha512sum", [], input: entry.tarball).stdout.utf8.prefix(128))
            let bytes = stride(from: 0, to: hex.count, by: 2).compactMap { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) }
            #expect(entry.integrity == "sha512-" + Data(bytes).base64EncodedString(), "\(entry.name)@\(entry.version)")
        }
    }

    @Test("the fixture tree: 20+ packages, scoped and not, bins, a peer, an install script, a ready tarball")
    func fixtures() throws {
        let catalog = try Catalog.load(from: fixturePackages)
        let names = Set(catalog.packages.keys)
        #expect(names.count >= 20)
        #expect(names.contains { $0.hasPrefix("@nodeos/") } && names.contains { !$0.hasPrefix("@") })
        func manifest(_ name: String, _ version: String) throws -> [String: Any] {
            try jsonObject(try #require(catalog.versionDocument(for: name, versionOrTag: version, baseURL: "http://h")))
        }
        #expect(try manifest("@nodeos/plugin-json", "1.0.0")["peerDependencies"] != nil)
        #expect(try manifest("@nodeos/native-sim", "1.0.0")["hasInstallScript"] as? Bool == true)
        #expect(try manifest("@nodeos/banner", "1.0.0")["bin"] != nil)
        #expect(try manifest("@nodeos/prebuilt", "latest")["version"] as? String == "1.0.0")
        // The ready tarball is served byte for byte.
        let ready = try Data(contentsOf: fixturePackages.appendingPathComponent("@nodeos/prebuilt/1.0.0.tgz"))
        #expect(catalog.version(of: "@nodeos/prebuilt", tarballFilename: "prebuilt-1.0.0.tgz")?.tarball == [UInt8](ready))
    }

    @Test("latest is the highest release; dist-tags.json overrides it")
    func latest() throws {
        let catalog = try Catalog.load(from: fixturePackages)
        #expect(catalog.packages["@nodeos/util"]?.distTags["latest"] == "2.0.0")
        #expect(catalog.packages["pad-lite"]?.distTags["latest"] == "1.1.0")
        #expect(catalog.packages["@nodeos/pinned"]?.distTags == ["latest": "1.0.0", "next": "2.0.0-beta.1"])
        #expect(SemanticVersion.latest(of: ["1.2.0", "1.10.0", "1.9.9", "2.0.0-rc.1"]) == "1.10.0")
        #expect(SemanticVersion.latest(of: ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta"]) == "1.0.0-beta")
        #expect(SemanticVersion("1.0.0-alpha.2")! < SemanticVersion("1.0.0-alpha.10")!)
        #expect(SemanticVersion("1.0.0-rc.1")! < SemanticVersion("1.0.0")!)
        #expect(SemanticVersion("1.0") == nil)
    }

    @Test("a bad manifest is reported with its path and what is wrong")
    func badManifest() async throws {
        try await withTemporaryDirectory { dir in
            try writePackage(root: dir, name: "wrong", version: "1.0.0", manifest: ["version": "1.0.1"])
            let error = try #require(throws: RegistryError.self) { try Catalog.load(from: dir) }
            #expect(error.code == .invalidManifest)
            #expect(error.message.contains("wrong/1.0.0/package.json"))
            #expect(error.message.contains("1.0.1"))
        }
        let missing = try #require(throws: RegistryError.self) {
            try Catalog.load(from: URL(fileURLWithPath: "/nonexistent/packages"))
        }
        #expect(missing.code == .unreadable)
    }
}

@Suite("Routes")
struct RouteTests {
    @Test("packument paths, scoped with %2f, %2F or a slash")
    func packuments() {
        #expect(Route(method: "GET", rawPath: "/pad-lite") == .packument(name: "pad-lite"))
        #expect(Route(method: "GET", rawPath: "/@nodeos%2fhello-cli") == .packument(name: "@nodeos/hello-cli"))
        #expect(Route(method: "GET", rawPath: "/@nodeos%2Fhello-cli?write=true") == .packument(name: "@nodeos/hello-cli"))
        #expect(Route(method: "GET", rawPath: "/@nodeos/hello-cli") == .packument(name: "@nodeos/hello-cli"))
        #expect(Route(method: "GET", rawPath: "/@nodeos") == .notFound)
        #expect(Route(method: "PUT", rawPath: "/pad-lite") == .notFound)
    }

    @Test("tarballs, versions and npm's own endpoints")
    func others() {
        #expect(Route(method: "GET", rawPath: "/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz")
            == .tarball(name: "@nodeos/hello-cli", filename: "hello-cli-1.0.0.tgz"))
        #expect(Route(method: "GET", rawPath: "/pad-lite/-/pad-lite-1.1.0.tgz") == .tarball(name: "pad-lite", filename: "pad-lite-1.1.0.tgz"))
        #expect(Route(method: "GET", rawPath: "/pad-lite/latest") == .version(name: "pad-lite", versionOrTag: "latest"))
        #expect(Route(method: "POST", rawPath: "/-/npm/v1/security/advisories/bulk") == .npmService(path: "/-/npm/v1/security/advisories/bulk"))
        #expect(Route(method: "GET", rawPath: "/-/ping?write=true") == .npmService(path: "/-/ping"))
    }
}

@Suite("Fault plans")
struct FaultPlanTests {
    let tarball = Route.tarball(name: "a", filename: "a-1.0.0.tgz")
    let packument = Route.packument(name: "a")

    @Test("scoped rules apply to their package only; tarball damage to tarballs only")
    func scoping() {
        let rules = [FaultRule(fault: .corruptTarball, package: "a"), FaultRule(fault: .httpError(500), package: "b")]
        #expect(FaultPlan(route: tarball, rules: rules) == FaultPlan(damage: .corrupt))
        #expect(FaultPlan(route: packument, rules: rules) == FaultPlan())
        #expect(FaultPlan(route: .packument(name: "b"), rules: rules) == FaultPlan(status: 500))
        #expect(FaultPlan(route: .npmService(path: "/-/ping"), rules: rules) == FaultPlan())
    }

    @Test("delays add up, the first error and the first damage win")
    func combining() {
        let rules: [FaultRule] = [
            .init(fault: .slow(.milliseconds(100))), .init(fault: .truncatedTarball), .init(fault: .corruptTarball),
            .init(fault: .slow(.milliseconds(50))), .init(fault: .httpError(503)), .init(fault: .httpError(500)),
        ]
        #expect(FaultPlan(route: tarball, rules: rules) == FaultPlan(delay: .milliseconds(150), status: 503, damage: .truncate))
    }

    @Test("corruption keeps the length and changes the digest")
    func corruption() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        let bad = FaultPlan.corrupt(bytes)
        #expect(bad.count == bytes.count)
        #expect(Digest.sha512(bad) != Digest.sha512(bytes))
    }
}

extension FaultRule {
    init(fault: Fault) { self.init(fault: fault, package: nil) }
}
