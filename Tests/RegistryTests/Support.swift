// Helpers shared by the registry tests: temp folders, subprocesses, fixtures.

import Foundation
import Synchronization
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

/// Runs a program to completion, off the cooperative pool, collecting its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: [UInt8]? = nil,
         currentDirectory: URL? = nil) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
                process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
                if let environment { process.environment = environment }
                if let currentDirectory { process.currentDirectoryURL = currentDirectory }
                let out = Pipe()
                let err = Pipe()
                let inPipe = Pipe()
                process.standardOutput = out
                process.standardError = err
                process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
                let clock = ContinuousClock()
                let start = clock.now
                try process.run()
                if let input {
                    DispatchQueue.global().async {
                        inPipe.fileHandleForWriting.write(Data(input))
                        try? inPipe.fileHandleForWriting.close()
                    }
                }
                // stderr drains on another thread so neither pipe can fill up and block.
                let errData = Mutex(Data())
                let group = DispatchGroup()
                group.enter()
                DispatchQueue.global().async {
                    let data = err.fileHandleForReading.readDataToEndOfFile()
                    errData.withLock { $0 = data }
                    group.leave()
                }
                let outData = out.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: ProcessResult(
                    status: process.terminationStatus,
                    stdout: String(decoding: outData, as: UTF8.self),
                    stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self),
                    duration: clock.now - start))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
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

