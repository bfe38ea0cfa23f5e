// Helpers shared by the registry tests: temp folders, subprocesses, fixtures.

import Foundation
import HostProcess
import Testing
@testable import NpmRegistry

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// `scenarios/packages`: the fixture tree.
let fixturePackages = repositoryRoot.appendingPathComponent("scenarios/packages")

/// A fresh temporary folder, removed when `body` returns or throws.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("registry-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

struct ProcessResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var duration: Duration
    var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Runs a program to completion, off the cooperative pool, collecting its
/// output: a name is looked up in `environment`'s `PATH` (default: this
/// process's); stdin is `input`, else empty.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: [UInt8]? = nil,
         currentDirectory: URL? = nil) async throws -> ProcessResult {
    let subprocess = Subprocess(executable, arguments, environment: environment, currentDirectory: currentDirectory?.path,
                                standardInput: input.map { .data(Data($0)) } ?? .null)
    let result = try await subprocess.run()
    return ProcessResult(status: result.status, stdout: result.stdoutText, stderr: result.stderrText, duration: result.duration)
}

/// Writes a package source folder `<root>/<name>/<version>/` with a manifest and files.
func writePackage(root: URL, name: String, version: String, manifest extra: [String: Any] = [:],
                  files: [String: String] = ["index.js": "module.exports = 1;\n"]) throws {
    let folder = root.appendingPathComponent(name).appendingPathComponent(version)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var manifest: [String: Any] = ["name": name, "version": version]
    manifest.merge(extra) { _, new in new }
    try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        .write(to: folder.appendingPathComponent("package.json"))
    for (path, text) in files {
        let url = folder.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
}

/// GET with curl (so the Host header is what we say): status and body bytes.
func httpGet(_ url: String, host: String? = nil) async throws -> (status: Int, body: Data) {
    let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent("registry-get-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: bodyFile) }
    var args = ["-s", "-o", bodyFile.path, "-w", "%{http_code}", url]
    if let host { args += ["-H", "Host: \(host)"] }
    let result = try await run("curl", args)
    let body = (try? Data(contentsOf: bodyFile)) ?? Data()
    return (Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body)
}

func jsonObject(_ data: Data) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

