import Foundation

/// A built NodeOS image: `build/image/` from `make image`.
public struct NodeOSImage: Sendable, Equatable {
    /// `manifest.json`, written by `make image`.
    public struct Manifest: Sendable, Equatable, Codable {
        public var imageHash: String
        public var kernelVersion: String
        public var nodeVersion: String
        public var kernel: String
        public var rootfs: String
        public var cmdline: String?
    }

    /// The command that builds the image.
    public static let buildCommand = "make image"

    public var directory: URL
    public var manifest: Manifest
    /// Absolute path of the kernel the manifest names (`vmlinux`, entered
    /// through PVH; older images name `bzImage`).
    public var kernelPath: String
    /// Absolute path of the read-only root file system.
    public var rootfsPath: String
    /// The default kernel command line (the `cmdline` file, else the manifest's).
    public var commandLine: String

    /// Loads the image in `directory`.
    public init(directory: URL) throws {
        self.directory = directory.standardizedFileURL
        let manifestURL = directory.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw ImageError.missing(directory: directory.path)
        }
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: manifestURL))
        } catch {
            throw ImageError.unreadable(path: manifestURL.path, reason: "\(error)")
        }
        kernelPath = self.directory.appendingPathComponent(manifest.kernel).path
        rootfsPath = self.directory.appendingPathComponent(manifest.rootfs).path
        let cmdlineURL = directory.appendingPathComponent("cmdline")
        if let text = try? String(contentsOf: cmdlineURL, encoding: .utf8) {
            commandLine = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            commandLine = manifest.cmdline ?? "console=ttyS0 root=/dev/vda ro rootfstype=erofs"
        }
        for path in [kernelPath, rootfsPath] where !FileManager.default.fileExists(atPath: path) {
            throw ImageError.unreadable(path: path, reason: "the manifest names it but it does not exist; run '\(Self.buildCommand)'")
        }
    }

    /// Where the image is: `$NODEOS_IMAGE`, else the first `build/image`
    /// holding a manifest in the current directory or one of its parents,
    /// else under `packageRoot` when given.
    public static func defaultDirectory(packageRoot: URL? = nil) -> URL {
        if let env = ProcessInfo.processInfo.environment["NODEOS_IMAGE"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        var candidates: [URL] = []
        var dir = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for _ in 0..<6 {
            candidates.append(dir.appendingPathComponent("build/image"))
            dir.deleteLastPathComponent()
        }
        if let packageRoot { candidates.append(packageRoot.appendingPathComponent("build/image")) }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("manifest.json").path) }
            ?? candidates.last!
    }

    /// Loads the default image.
    public static func load(packageRoot: URL? = nil) throws -> NodeOSImage {
        try NodeOSImage(directory: defaultDirectory(packageRoot: packageRoot))
    }
}

/// The image could not be used.
public enum ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    case missing(directory: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let directory):
            "no NodeOS image at \(directory) (no manifest.json): build it with '\(NodeOSImage.buildCommand)' or set NODEOS_IMAGE"
        case .unreadable(let path, let reason):
            "cannot use the NodeOS image file \(path): \(reason)"
        }
    }
}
