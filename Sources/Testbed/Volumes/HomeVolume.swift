import Foundation

/// A user's home: an ext4 volume made on the host without root or loop devices
/// (`mkfs.ext4 -d`), attached to a machine as a disk whose serial is
/// `home-<user>`, and read back on the host after the machine stops
/// (`debugfs`, `e2fsck -n`), never by mounting it.
///
/// ```swift
/// let home = try HomeVolume.create(user: "alice", uid: 1000, files: ["notes.txt": Data("hi".utf8)], in: dir)
/// spec.attach(home)
/// // … boot, work, shut down …
/// #expect(try home.readFile("notes.txt") == Data("hi".utf8))
/// #expect(try home.check().clean)
/// ```
public struct HomeVolume: Sendable, Hashable {
    public let user: String
    public let path: URL
    public let uid: Int
    public let gid: Int

    /// The disk serial init looks for.
    public var serial: String { "home-\(user)" }

    /// How the volume is attached to a machine.
    public var disk: DomainSpec.Disk { DomainSpec.Disk(path: path.path, serial: serial) }

    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Creates `<folder>/home-<user>.ext4`.
    ///
    /// - Parameters:
    ///   - uid, gid: the owner of the volume's root and of every injected file.
    ///     init takes the root's owner as the user's uid, so the volume carries
    ///     its owner from boot to boot.
    ///   - files: relative path → contents, written into the home.
    ///   - directory: a host folder whose contents are copied in first.
    ///   - sizeMiB: the volume's size.
    public static func create(
        user: String, uid: Int, gid: Int? = nil, sizeMiB: Int = 64,
        files: [String: Data] = [:], from directory: URL? = nil, in folder: URL
    ) throws -> HomeVolume {
        guard user.range(of: #"^[a-z_][a-z0-9_-]{0,31}$"#, options: .regularExpression) != nil else {
            throw Error(description: "home volume: user name '\(user)' must match [a-z_][a-z0-9_-]{0,31}")
        }
        guard sizeMiB >= 8 else { throw Error(description: "home volume for \(user): sizeMiB must be at least 8, got \(sizeMiB)") }
        let gid = gid ?? uid
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let stage = folder.appendingPathComponent(".stage-\(user)-\(UUID().uuidString.prefix(8))")
        defer { try? fm.removeItem(at: stage) }
        if let directory {
            try fm.copyItem(at: directory, to: stage)
        } else {
            try fm.createDirectory(at: stage, withIntermediateDirectories: true)
        }
        for (relative, contents) in files.sorted(by: { $0.key < $1.key }) {
            guard !relative.hasPrefix("/"), !relative.split(separator: "/").contains("..") else {
                throw Error(description: "home volume for \(user): file path '\(relative)' must be relative and stay inside the home")
            }
            let file = stage.appendingPathComponent(relative)
            try fm.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: file)
        }
        // mkfs.ext4 -d copies owners from the staged files: give them the user.
        if getuid() == 0 {
            try HostCommand("chown", ["-R", "\(uid):\(gid)", stage.path], step: "giving \(user) the staged home files").run()
        }
        let volume = folder.appendingPathComponent("home-\(user).ext4")
        try? fm.removeItem(at: volume)
        try HostCommand("mkfs.ext4", [
            "-q", "-F", "-t", "ext4", "-L", "home-\(user)", "-d", stage.path,
            "-E", "root_owner=\(uid):\(gid)", volume.path, "\(sizeMiB)M",
        ], step: "creating \(user)'s home volume").run()
        return HomeVolume(user: user, path: volume, uid: uid, gid: gid)
    }

    /// Wraps an existing volume file.
    public init(user: String, path: URL, uid: Int, gid: Int? = nil) {
        self.user = user
        self.path = path
        self.uid = uid
        self.gid = gid ?? uid
    }

    /// Reads a file from the volume on the host (the machine must be stopped).
    public func readFile(_ relative: String) throws -> Data {
        let inside = "/" + relative.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return try withRecoveredImage { image in
            guard try Self.exists(inside, in: image, serial: serial) else {
                throw Error(description: "\(serial) (\(path.path)): no file \(inside) on the volume")
            }
            return try HostCommand("debugfs", ["-R", "cat \"\(inside)\"", image], step: "reading \(inside) from \(serial)").run().stdout
        }
    }

    /// Whether a path exists on the volume.
    public func fileExists(_ relative: String) throws -> Bool {
        let inside = "/" + relative.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return try withRecoveredImage { try Self.exists(inside, in: $0, serial: serial) }
    }

    private static func exists(_ inside: String, in image: String, serial: String) throws -> Bool {
        let result = try HostCommand("debugfs", ["-R", "stat \"\(inside)\"", image], step: "looking up \(inside) on \(serial)").result()
        return result.status == 0 && !result.stderr.contains("File not found")
    }

    /// Whether the journal holds transactions not yet written home (a machine
    /// was destroyed, not shut down).
    public func needsRecovery() throws -> Bool {
        let header = try HostCommand("dumpe2fs", ["-h", path.path], step: "reading \(serial)'s superblock").run().stdoutText
        return header.split(separator: "\n").contains { $0.hasPrefix("Filesystem features:") && $0.contains("needs_recovery") }
    }

    /// debugfs does not replay the journal: after a crash, read a copy on
    /// which the journal was replayed, as the kernel would at the next mount.
    /// The volume itself is never changed.
    private func withRecoveredImage<T>(_ body: (String) throws -> T) throws -> T {
        guard try needsRecovery() else { return try body(path.path) }
        let copy = path.deletingLastPathComponent().appendingPathComponent(".replayed-\(UUID().uuidString.prefix(8)).ext4")
        defer { try? FileManager.default.removeItem(at: copy) }
        try HostCommand("cp", ["--sparse=always", path.path, copy.path], step: "copying \(serial) to replay its journal").run()
        _ = try HostCommand("e2fsck", ["-p", "-E", "journal_only", copy.path], step: "replaying \(serial)'s journal").result()
        return try body(copy.path)
    }

    /// The names in a directory of the volume.
    public func listDirectory(_ relative: String = "") throws -> [String] {
        let inside = "/" + relative.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let output = try withRecoveredImage { image in
            try HostCommand("debugfs", ["-R", "ls -p \"\(inside)\"", image], step: "listing \(inside) on \(serial)").run().stdoutText
        }
        // ls -p: /inode/mode/uid/gid/name/size/
        return output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "/", omittingEmptySubsequences: false)
            guard fields.count >= 6 else { return nil }
            let name = String(fields[5])
            return name == "." || name == ".." ? nil : name
        }
    }

    public struct FsckResult: Sendable {
        /// e2fsck found nothing to fix.
        public var clean: Bool
        public var output: String
    }

    /// `e2fsck -fn`: checks without changing anything. A journal that still
    /// needs replaying is replayed first on a copy, as the kernel would at the
    /// next mount, so a crashed machine's volume is judged after recovery.
    public func check() throws -> FsckResult {
        let copy = path.deletingLastPathComponent().appendingPathComponent(".fsck-\(UUID().uuidString.prefix(8)).ext4")
        defer { try? FileManager.default.removeItem(at: copy) }
        try HostCommand("cp", ["--sparse=always", path.path, copy.path], step: "copying \(serial) for e2fsck").run()
        // -p replays the journal and fixes only what is safe; the verdict comes from -fn after.
        _ = try HostCommand("e2fsck", ["-p", copy.path], step: "replaying \(serial)'s journal").result()
        let result = try HostCommand("e2fsck", ["-fn", copy.path], step: "checking \(serial)").result()
        return FsckResult(clean: result.status == 0, output: result.stdoutText + result.stderr)
    }
}

extension MachineSpec {
    /// Attaches a home volume; init mounts it at `/home/<user>` (`/root` for root).
    public mutating func attach(_ home: HomeVolume) {
        disks.append(home.disk)
    }
}
