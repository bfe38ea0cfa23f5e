// End to end with the real npm client on the host: install the 20-package
// tree, run its bin, reinstall from a warm cache, and fail on purpose.
// Each test has its own HOME, npm cache and prefix, removed afterwards.

import Foundation
import TestbedTesting
import Testing
@testable import NpmRegistry

/// The npm client these tests drive: the pinned node in build/node, else `npm` on PATH.
struct Npm: Sendable {
    let node: String
    let cli: String

    static let found: Npm? = {
        let fm = FileManager.default
        let node = repositoryRoot.appendingPathComponent("build/node/bin/node").path
        let cli = repositoryRoot.appendingPathComponent("build/node/lib/node_modules/npm/bin/npm-cli.js").path
        if fm.isExecutableFile(atPath: node) && fm.fileExists(atPath: cli) { return Npm(node: node, cli: cli) }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let npm = URL(fileURLWithPath: String(dir)).appendingPathComponent("npm").resolvingSymlinksInPath()
            let node = URL(fileURLWithPath: String(dir)).appendingPathComponent("node")
            if fm.fileExists(atPath: npm.path) && fm.isExecutableFile(atPath: node.path) {
                return Npm(node: node.path, cli: npm.path)
            }
        }
        return nil
    }()

    /// What the suite needs: node and npm, pinned in build/node or on PATH.
    static let prerequisite = Prerequisite(
        "node and npm (neither \(repositoryRoot.path)/build/node nor PATH has both)",
        remedy: "fetch the pinned node with 'images/fetch-node.sh build/node' ('make image' does it), or put node and npm on PATH"
    ) { found != nil }

    /// A sandbox: HOME, cache and configs under `home`, node first on PATH, nothing inherited.
    func environment(home: URL) -> [String: String] {
        let nodeBin = URL(fileURLWithPath: node).deletingLastPathComponent().path
        return [
            "PATH": "\(nodeBin):/usr/local/bin:/usr/bin:/bin",
            "HOME": home.path,
            "npm_config_cache": home.appendingPathComponent(".npm").path,
            "npm_config_userconfig": home.appendingPathComponent(".npmrc").path,
            "npm_config_globalconfig": home.appendingPathComponent("npmrc-global").path,
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_loglevel": "error",
        ]
    }

    /// `npm <arguments> --registry <registry>`; retries off so faults fail fast.
    func callAsFunction(_ arguments: [String], registry: URL, home: URL) async throws -> ProcessResult {
        try await run(node, [cli] + arguments + ["--registry", registry.absoluteString, "--fetch-retries=0"],
                      environment: environment(home: home))
    }

    /// `npm install -g --prefix <prefix> <packages>`, as a NodeOS user installs into their home.
    func installGlobal(_ packages: [String], prefix: URL, registry: URL, home: URL) async throws -> ProcessResult {
        try await self(["install", "-g", "--prefix", prefix.path] + packages, registry: registry, home: home)
    }
}

/// The packages `@nodeos/hello-cli` pulls in, itself included.
let helloTree: Set<String> = [
    "@nodeos/hello-cli", "@nodeos/greeting", "@nodeos/strings", "@nodeos/util", "@nodeos/locale", "@nodeos/format",
    "pad-lite", "ansi-mini", "@nodeos/logger", "@nodeos/clock", "@nodeos/config", "@nodeos/deep-merge",
    "@nodeos/semver-mini", "@nodeos/plugin-host", "@nodeos/events", "@nodeos/once", "@nodeos/plugin-json",
    "@nodeos/native-sim", "@nodeos/path-utils", "@nodeos/banner", "@nodeos/prebuilt", "args-lite",
]

/// Every `node_modules/<name>` (or `node_modules/@scope/<name>`) with a package.json under `root`, as name@version.
func installedPackages(under root: URL) throws -> [String] {
    var found: [String] = []
    let fm = FileManager.default
    guard let walker = fm.enumerator(atPath: root.path) else { return [] }
    while let relative = walker.nextObject() as? String {
        guard relative.hasSuffix("/package.json") else { continue }
        let parts = relative.split(separator: "/").dropLast()
        let isPackageDir = parts.count >= 2 && parts[parts.count - 2] == "node_modules"
            || parts.count >= 3 && parts[parts.count - 3] == "node_modules" && parts[parts.count - 2].hasPrefix("@")
        guard isPackageDir else { continue }
        let manifest = try jsonObject(Data(contentsOf: root.appendingPathComponent(relative)))
        if let name = manifest["name"] as? String, let version = manifest["version"] as? String {
            found.append("\(name)@\(version)")
        }
    }
    return found.sorted()
}

@Suite("npm against the registry", .serialized, .requires(Npm.prerequisite))
struct NpmTests {
    let npm = Npm.found!

    @Test("install the 20-package tree, run its bin; a warm cache fetches no tarball")
    func installAndWarmCache() async throws {
        try await withTemporaryDirectory { dir in
            try await Registry.withRegistry(packages: fixturePackages) { registry in
                let home = dir.appendingPathComponent("home")
                let prefix = dir.appendingPathComponent("prefix")
                let cold = try await npm.installGlobal(["@nodeos/hello-cli"], prefix: prefix, registry: registry.url, home: home)
                try #require(cold.status == 0, "\(cold)")

                let installed = try installedPackages(under: prefix.appendingPathComponent("lib"))
                let names = Set(installed.map { String($0[..<$0.lastIndex(of: "@")!]) })
                #expect(names == helloTree, "installed: \(installed)")
                #expect(installed.count == 23, "22 packages, util in two versions")
                // The diamond: util@2 for format, util@1 nested for the others (or the reverse).
                #expect(installed.contains("@nodeos/util@1.1.0") && installed.contains("@nodeos/util@2.0.0"))
                #expect(registry.tarballRequests.count == installed.count)
                #expect(registry.tarballRequests.allSatisfy { $0.status == 200 })

                let hello = try await run(prefix.appendingPathComponent("bin/hello").path, [],
                                          environment: npm.environment(home: home))
                #expect(hello.status == 0, "\(hello)")
                let lines = hello.stdout.split(separator: "\n").map(String.init)
                #expect(lines.first == "hello-cli 1.0.0")
                #expect(lines.contains("Hello, world!"))
                #expect(lines.contains("plugins: 1, native: built, prebuilt: yes"), "install script ran, peer and ready tarball resolved")
                let marker = prefix.appendingPathComponent("lib/node_modules/@nodeos/hello-cli/node_modules/@nodeos/native-sim/built.txt")
                #expect(FileManager.default.fileExists(atPath: marker.path))

                // Same cache, fresh prefix: packuments are asked for again, tarballs come from the cache.
                registry.clearRequests()
                let warmPrefix = dir.appendingPathComponent("prefix-warm")
                let warm = try await npm.installGlobal(["@nodeos/hello-cli"], prefix: warmPrefix, registry: registry.url, home: home)
                try #require(warm.status == 0, "\(warm)")
                #expect(registry.tarballRequests.isEmpty, "\(registry.tarballRequests)")
                let again = try await run(warmPrefix.appendingPathComponent("bin/hello").path, ["--version"],
                                          environment: npm.environment(home: home))
                #expect(again.stdout == "hello-cli 1.0.0\n")
            }
        }
    }

    @Test("a project install: scoped and unscoped, audit answered harmlessly, lockfile integrity from the registry")
    func projectInstall() async throws {
        try await withTemporaryDirectory { dir in
            try await Registry.withRegistry(packages: fixturePackages) { registry in
                let home = dir.appendingPathComponent("home")
                let project = dir.appendingPathComponent("project")
                try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
                let result = try await npm(["install", "--prefix", project.path, "--audit", "@nodeos/banner", "@nodeos/pinned"],
                                           registry: registry.url, home: home)
                try #require(result.status == 0, "\(result)")
                let lock = try jsonObject(Data(contentsOf: project.appendingPathComponent("package-lock.json")))
                let packages = try #require(lock["packages"] as? [String: [String: Any]])
                let banner = try #require(packages["node_modules/@nodeos/banner"])
                let served = try #require(registry.catalog.packages["@nodeos/banner"]?.versions["1.0.0"])
                #expect(banner["integrity"] as? String == served.integrity)
                #expect(banner["resolved"] as? String == "\(registry.url)/@nodeos/banner/-/banner-1.0.0.tgz")
                #expect(packages["node_modules/@nodeos/pinned"]?["version"] as? String == "1.0.0", "dist-tags.json pins latest")
                let bin = try await run(project.appendingPathComponent("node_modules/.bin/banner").path, ["hi"],
                                        environment: npm.environment(home: home))
                #expect(bin.stdout.contains("* hi *"))
                let audits = registry.requests.filter { $0.path.hasPrefix("/-/npm/v1/security/") }
                #expect(!audits.isEmpty && audits.allSatisfy { $0.status == 200 }, "\(registry.requests)")
            }
        }
    }

    @Test("registry down: npm fails with ECONNREFUSED")
    func down() async throws {
        let result = try await failedInstall { registry in try await registry.inject(.down) }
        #expect(result.combined.contains("ECONNREFUSED"), "\(result)")
    }

    @Test("HTTP 500: npm fails with E500")
    func serverError() async throws {
        let result = try await failedInstall { registry in try await registry.inject(.httpError(500)) }
        #expect(result.combined.contains("E500"), "\(result)")
    }

    @Test("a corrupt tarball: npm fails with EINTEGRITY and installs nothing")
    func corruptTarball() async throws {
        let result = try await failedInstall { registry in try await registry.inject(.corruptTarball, for: "@nodeos/clock") }
        #expect(result.combined.contains("EINTEGRITY"), "\(result)")
        #expect(result.binExists == false)
    }

    @Test("garbage metadata (an HTML page with 200 OK): npm fails with its own parse error and installs nothing")
    func garbageMetadata() async throws {
        let result = try await failedInstall { registry in try await registry.inject(.garbageMetadata) }
        #expect(result.binExists == false)
        #expect(result.combined.contains("EJSONPARSE") || result.combined.contains("Unexpected token"), "\(result)")
    }

    @Test("a truncated tarball: npm fails with ECONNRESET and installs nothing")
    func truncatedTarball() async throws {
        let result = try await failedInstall { registry in try await registry.inject(.truncatedTarball, for: "@nodeos/clock") }
        #expect(result.binExists == false)
        #expect(result.combined.contains("ECONNRESET"), "\(result)")
    }

    @Test("a slow registry: npm waits and succeeds")
    func slow() async throws {
        try await withTemporaryDirectory { dir in
            try await Registry.withRegistry(packages: fixturePackages) { registry in
                try await registry.inject(.slow(.milliseconds(500)), for: "@nodeos/banner")
                let result = try await npm.installGlobal(["@nodeos/banner"], prefix: dir.appendingPathComponent("prefix"),
                                                         registry: registry.url, home: dir.appendingPathComponent("home"))
                #expect(result.status == 0, "\(result)")
                #expect(result.duration >= .milliseconds(1000), "packument and tarball each waited")
            }
        }
    }

    struct Failure: CustomStringConvertible {
        var result: ProcessResult
        var binExists: Bool
        var combined: String { result.stdout + result.stderr }
        var description: String { "\(result)" }
    }

    /// Installs hello-cli with `fault` in force; expects a non-zero exit.
    func failedInstall(_ fault: (Registry) async throws -> Void) async throws -> Failure {
        try await withTemporaryDirectory { dir in
            try await Registry.withRegistry(packages: fixturePackages) { registry in
                try await fault(registry)
                let prefix = dir.appendingPathComponent("prefix")
                let result = try await npm.installGlobal(["@nodeos/hello-cli"], prefix: prefix, registry: registry.url,
                                                         home: dir.appendingPathComponent("home"))
                #expect(result.status != 0, "\(result)")
                let bin = prefix.appendingPathComponent("bin/hello").path
                return Failure(result: result, binExists: FileManager.default.fileExists(atPath: bin))
            }
        }
    }
}

/// `REGISTRY_BENCH=1 swift test --filter RegistryTests.InstallBenchmark`: median cold install of the tree.
@Suite("Install benchmark", .enabled(if: ProcessInfo.processInfo.environment["REGISTRY_BENCH"] != nil, "opt-in: REGISTRY_BENCH=1"),
       .requires(Npm.prerequisite))
struct InstallBenchmark {
    @Test("host npm installs the 20-package tree from a cold cache: median of 3")
    func coldInstall() async throws {
        let npm = Npm.found!
        var times: [Duration] = []
        for _ in 0..<3 {
            try await withTemporaryDirectory { dir in
                try await Registry.withRegistry(packages: fixturePackages) { registry in
                    let result = try await npm.installGlobal(["@nodeos/hello-cli"], prefix: dir.appendingPathComponent("prefix"),
                                                             registry: registry.url, home: dir.appendingPathComponent("home"))
                    try #require(result.status == 0, "\(result)")
                    times.append(result.duration)
                }
            }
        }
        let median = times.sorted()[1]
        print("host npm cold install of @nodeos/hello-cli: median \(median) of \(times)")
    }
}
