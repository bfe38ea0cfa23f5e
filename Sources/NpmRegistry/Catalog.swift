// The packages a registry serves, loaded once from a folder:
//
//     <root>/<name>/<version>/package.json (+ files)    packed here
//     <root>/@scope/<name>/<version>/package.json       scoped
//     <root>/<name>/<version>.tgz                        served as is
//     <root>/<name>/dist-tags.json                       optional, e.g. {"latest": "1.0.0"}
//
// Pure data: packuments are built per request for the host the client used.

import Foundation
import HostProcess
import TestbedCore

/// One published version: its manifest, its tarball and the tarball's digests.
public struct PackageVersion: Sendable {
    public let name: String
    public let version: String
    /// The package.json as published (JSON object).
    let manifest: Data
    public let tarball: [UInt8]
    /// SHA-1 of the tarball, hex: npm's `dist.shasum`.
    public let shasum: String
    /// "sha512-" + base64 of the tarball's SHA-512: npm's `dist.integrity`.
    public let integrity: String

    /// The tarball's file name, `<name without scope>-<version>.tgz`.
    public var tarballFilename: String { "\(Catalog.basename(of: name))-\(version).tgz" }

    init(name: String, version: String, manifest: Data, tarball: [UInt8]) {
        self.name = name
        self.version = version
        self.manifest = manifest
        self.tarball = tarball
        self.shasum = Digest.hex(Digest.sha1(tarball))
        self.integrity = "sha512-" + Data(Digest.sha512(tarball)).base64EncodedString()
    }
}

/// A package: all its versions and dist-tags.
public struct PackageRecord: Sendable {
    public let name: String
    public let versions: [String: PackageVersion]
    public let distTags: [String: String]
}

public struct Catalog: Sendable {
    /// Every version's `time`: the fixed date npm packs with, so packuments are reproducible.
    static let publishedTime = "1985-10-26T08:15:00.000Z"

    public let packages: [String: PackageRecord]

    public init(packages: [PackageRecord]) {
        self.packages = Dictionary(packages.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Every version of every package, sorted by name then version.
    public var allVersions: [PackageVersion] {
        packages.keys.sorted().flatMap { name in
            packages[name]!.versions.values.sorted { $0.version < $1.version }
        }
    }

    /// `@scope/name` → `name`; `name` → `name`.
    static func basename(of name: String) -> String {
        name.split(separator: "/").last.map(String.init) ?? name
    }

    // MARK: Loading

    /// Loads every package under `root`. Throws naming the file at fault.
    public static func load(from root: URL) throws -> Catalog {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RegistryError.unreadable(path: root.path, reason: "no such directory")
        }
        var records: [PackageRecord] = []
        for entry in try children(of: root) where try isDir(root.appendingPathComponent(entry)) {
            if entry.hasPrefix("@") {
                let scope = root.appendingPathComponent(entry)
                for child in try children(of: scope) where try isDir(scope.appendingPathComponent(child)) {
                    records.append(try loadPackage(name: "\(entry)/\(child)", at: scope.appendingPathComponent(child)))
                }
            } else if !entry.hasPrefix(".") {
                records.append(try loadPackage(name: entry, at: root.appendingPathComponent(entry)))
            }
        }
        return Catalog(packages: records)
    }

    private static func children(of url: URL) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
        } catch {
            throw RegistryError.unreadable(path: url.path, reason: "\(error.localizedDescription)")
        }
    }

    private static func isDir(_ url: URL) throws -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func loadPackage(name: String, at folder: URL) throws -> PackageRecord {
        var versions: [String: PackageVersion] = [:]
        for entry in try children(of: folder) {
            let url = folder.appendingPathComponent(entry)
            if try isDir(url) {
                let manifestURL = url.appendingPathComponent("package.json")
                guard FileManager.default.fileExists(atPath: manifestURL.path) else { continue }
                let manifestData = try Data(contentsOf: manifestURL)
                let manifest = try parseManifest(manifestData, path: manifestURL.path, name: name)
                let version = manifest["version"] as! String
                guard version == entry else {
                    throw RegistryError.invalidManifest(
                        path: manifestURL.path, reason: "\"version\" is \"\(version)\" but the folder is named \"\(entry)\"")
                }
                let tarball = try Tarball.pack(directory: url, binPaths: binPaths(of: manifest))
                versions[version] = PackageVersion(name: name, version: version, manifest: manifestData, tarball: tarball)
            } else if entry.hasSuffix(".tgz") {
                let tarball = try [UInt8](Data(contentsOf: url))
                let manifestData = try manifestInTarball(at: url)
                let manifest = try parseManifest(manifestData, path: url.path + "!package.json", name: name)
                let version = manifest["version"] as! String
                guard entry == "\(version).tgz" else {
                    throw RegistryError.invalidManifest(
                        path: url.path, reason: "its package.json says version \"\(version)\"; name the file \(version).tgz")
                }
                versions[version] = PackageVersion(name: name, version: version, manifest: manifestData, tarball: tarball)
            }
        }
        guard !versions.isEmpty else {
            throw RegistryError.unreadable(path: folder.path, reason: "no <version>/package.json nor <version>.tgz in it")
        }
        var distTags: [String: String] = [:]
        let tagsURL = folder.appendingPathComponent("dist-tags.json")
        if FileManager.default.fileExists(atPath: tagsURL.path) {
            guard let tags = try JSONSerialization.jsonObject(with: Data(contentsOf: tagsURL)) as? [String: String] else {
                throw RegistryError.invalidManifest(path: tagsURL.path, reason: "expected an object of tag → version strings")
            }
            for (tag, version) in tags where versions[version] == nil {
                throw RegistryError.invalidManifest(path: tagsURL.path, reason: "tag \"\(tag)\" names unknown version \(version)")
            }
            distTags = tags
        }
        if distTags["latest"] == nil {
            distTags["latest"] = SemanticVersion.latest(of: versions.keys) ?? versions.keys.sorted().last!
        }
        return PackageRecord(name: name, versions: versions, distTags: distTags)
    }

    private static func parseManifest(_ data: Data, path: String, name: String) throws -> [String: Any] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw RegistryError.invalidManifest(path: path, reason: "not JSON (\(error.localizedDescription))")
        }
        guard let manifest = object as? [String: Any] else {
            throw RegistryError.invalidManifest(path: path, reason: "not a JSON object")
        }
        guard manifest["name"] as? String == name else {
            throw RegistryError.invalidManifest(
                path: path, reason: "\"name\" is \(manifest["name"].map { "\"\($0)\"" } ?? "missing") but the folder says \"\(name)\"")
        }
        guard let version = manifest["version"] as? String, SemanticVersion(version) != nil else {
            throw RegistryError.invalidManifest(path: path, reason: "\"version\" is missing or not semver")
        }
        return manifest
    }

    /// The files a manifest's `bin` names (a string or an object of paths).
    private static func binPaths(of manifest: [String: Any]) -> Set<String> {
        switch manifest["bin"] {
        case let path as String: return [Tarball.normalised(path)]
        case let paths as [String: String]: return Set(paths.values.map(Tarball.normalised))
        default: return []
        }
    }

    /// The top-level package.json of a ready tarball, read with the system's tar.
    private static func manifestInTarball(at url: URL) throws -> Data {
        let listing = try runTar(["-tzf", url.path], for: url)
        let lines = String(decoding: listing, as: UTF8.self).split(separator: "\n")
        guard let member = lines.first(where: { $0.split(separator: "/").count == 2 && $0.hasSuffix("/package.json") }) else {
            throw RegistryError.invalidManifest(path: url.path, reason: "no <dir>/package.json in the tarball")
        }
        return try runTar(["-xzOf", url.path, String(member)], for: url)
    }

    private static func runTar(_ arguments: [String], for url: URL) throws -> Data {
        let result: Subprocess.Result
        do {
            result = try Subprocess("tar", arguments, standardError: .discard, timeout: .seconds(120)).run()
        } catch {
            throw RegistryError.unreadable(path: url.path, reason: "cannot run tar: \(error)")
        }
        guard result.status == 0, !result.timedOut else {
            throw RegistryError.unreadable(path: url.path, reason: "tar \(arguments[0]) exited \(result.status)")
        }
        return result.stdout
    }

    // MARK: Documents

    /// The full packument for `name`, its tarball URLs under `baseURL`
    /// (e.g. "http://10.0.2.2:4873"). Nil for an unknown package.
    public func packument(for name: String, baseURL: String) -> Data? {
        guard let record = packages[name] else { return nil }
        var versions: [String: Any] = [:]
        var time: [String: Any] = ["created": Self.publishedTime, "modified": Self.publishedTime]
        for (version, entry) in record.versions {
            versions[version] = versionDocument(entry, baseURL: baseURL)
            time[version] = Self.publishedTime
        }
        let document: [String: Any] = [
            "_id": name,
            "name": name,
            "dist-tags": record.distTags,
            "versions": versions,
            "time": time,
        ]
        return Self.encode(document)
    }

    /// One version's document, by version or dist-tag (`GET /<name>/<version>`).
    public func versionDocument(for name: String, versionOrTag: String, baseURL: String) -> Data? {
        guard let record = packages[name] else { return nil }
        let version = record.distTags[versionOrTag] ?? versionOrTag
        return record.versions[version].map { Self.encode(versionDocument($0, baseURL: baseURL)) }
    }

    /// The version whose tarball is `filename` (`<basename>-<version>.tgz`).
    public func version(of name: String, tarballFilename filename: String) -> PackageVersion? {
        let prefix = Self.basename(of: name) + "-"
        guard let record = packages[name], filename.hasPrefix(prefix), filename.hasSuffix(".tgz") else { return nil }
        return record.versions[String(filename.dropFirst(prefix.count).dropLast(4))]
    }

    /// The tarball URL a packument gives for `entry`.
    public static func tarballURL(of entry: PackageVersion, baseURL: String) -> String {
        "\(baseURL)/\(entry.name)/-/\(entry.tarballFilename)"
    }

    private func versionDocument(_ entry: PackageVersion, baseURL: String) -> [String: Any] {
        var document = (try? JSONSerialization.jsonObject(with: entry.manifest) as? [String: Any]) ?? [:]
        document["_id"] = "\(entry.name)@\(entry.version)"
        document["dist"] = [
            "tarball": Self.tarballURL(of: entry, baseURL: baseURL),
            "shasum": entry.shasum,
            "integrity": entry.integrity,
        ]
        if let scripts = document["scripts"] as? [String: Any],
            scripts.keys.contains(where: { ["preinstall", "install", "postinstall"].contains($0) })
        {
            document["hasInstallScript"] = true
        }
        return document
    }

    static func encode(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }
}
