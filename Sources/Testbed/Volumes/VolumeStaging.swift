import Foundation
import Libvirt
import Synchronization

/// When a testbed's files (kernel, rootfs, home and config volumes) travel
/// to the libvirt host through libvirt's storage API instead of being named
/// by their local paths.
public enum VolumeStagingMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Only when the URI is not local (see ``LibvirtURI/isLocal(_:)``).
    case auto
    /// On every URI but the embedded driver (which has no storage driver):
    /// exercises the upload path against a daemon on this host.
    case always
    /// Never: the libvirt host must see this host's paths (same host or a shared file system).
    case never

    /// `$NODEOS_STAGE_VOLUMES` (`auto`, `always`, `never`); `auto` when unset.
    public static var configured: VolumeStagingMode {
        get throws {
            guard let text = ProcessInfo.processInfo.environment["NODEOS_STAGE_VOLUMES"], !text.isEmpty else { return .auto }
            guard let mode = VolumeStagingMode(rawValue: text.lowercased()) else {
                throw TestbedError.setup("NODEOS_STAGE_VOLUMES must be auto, always or never, not '\(text)'")
            }
            return mode
        }
    }

    /// Whether machines on `uri` get their volumes uploaded.
    public func stages(uri: String) -> Bool {
        if LibvirtURI.isEmbedded(uri) { return false }
        switch self {
        case .auto: return !LibvirtURI.isLocal(uri)
        case .always: return true
        case .never: return false
        }
    }

    public var description: String { rawValue }
}

/// What a libvirt URI says about where its host is.
public enum LibvirtURI {
    /// Whether the libvirt host shares this host's file system: the embedded
    /// driver and transport-less `driver:///…` URIs (`qemu:///system`,
    /// `qemu:///session`) are local; a transport (`qemu+unix`, `qemu+ssh`,
    /// `qemu+tcp`, `qemu+tls`, …) or a host name (`qemu://host/system`) is remote.
    public static func isLocal(_ uri: String) -> Bool {
        guard let colon = uri.firstIndex(of: ":") else { return true }
        let scheme = uri[..<colon]
        if scheme.contains("+") { return false }
        let rest = uri[uri.index(after: colon)...]
        guard rest.hasPrefix("//") else { return true }
        let authority = rest.dropFirst(2).prefix { $0 != "/" && $0 != "?" }
        let host = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
        return host.isEmpty
    }

    /// Whether `uri` names libvirt's embedded QEMU driver.
    public static func isEmbedded(_ uri: String) -> Bool {
        uri.hasPrefix("qemu:///embed")
    }
}

/// Puts machines' files into a `dir` storage pool on the libvirt host, so a
/// remote URI works without a shared file system.
///
/// The pool (`nodeos-testbed`, in `/var/lib/libvirt/nodeos-testbed` unless
/// `$NODEOS_STAGE_POOL` / `$NODEOS_STAGE_POOL_PATH` say otherwise) is found or
/// defined and started on first use. The kernel and rootfs become volumes named
/// by the image's hash and are kept for later runs (reused when the size
/// matches); each machine's home and config volumes are uploaded as volumes of
/// its own and, when the machine is gone, written back into the local files
/// (see ``StagedVolumes/finish(download:)``) and deleted.
public final class VolumeStaging: Sendable {
    public static let defaultPoolName = "nodeos-testbed"
    public static let defaultPoolPath = "/var/lib/libvirt/nodeos-testbed"

    /// The pool's name.
    public let poolName: String
    /// Where the pool keeps its files on the libvirt host (when the testbed defines it).
    public let poolPath: String
    let connection: Connection
    let uri: String
    private let poolLock = Slots(limit: 1)
    private let imageLock = Slots(limit: 1)
    private let pool = Mutex<StoragePool?>(nil)

    init(connection: Connection, uri: String) {
        let environment = ProcessInfo.processInfo.environment
        self.connection = connection
        self.uri = uri
        poolName = environment["NODEOS_STAGE_POOL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultPoolName
        poolPath = environment["NODEOS_STAGE_POOL_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultPoolPath
    }

    /// "pool nodeos-testbed on URI qemu+ssh://…", for messages.
    var place: String { "pool \(poolName) on URI \(uri)" }

    /// The pool, found or made (defined, built, started) on first use.
    func storagePool() async throws -> StoragePool {
        try await poolLock.withSlots(what: "waiting for the storage pool's lock") {
            if let known = pool.withLock({ $0 }) { return known }
            let (connection, name, path) = (self.connection, poolName, poolPath)
            let found = try await Self.blocking {
                let pool: StoragePool
                if let existing = try connection.lookupStoragePool(name: name) {
                    pool = existing
                } else {
                    pool = try connection.defineStoragePool(xml: StoragePool.directoryXML(name: name, path: path), name: name)
                    try pool.build()
                }
                if !pool.isActive() { try pool.start() }
                try pool.refresh()
                return pool
            }
            LibvirtLog.append("volumes: using storage \(place) (\((try? found.targetPath()) ?? path))")
            pool.withLock { $0 = found }
            return found
        }
    }

    /// Uploads what `spec` needs and returns the spec with pool paths in it.
    func stage(_ spec: MachineSpec, machine: String) async throws -> StagedVolumes {
        let pool = try await storagePool()
        let began = ContinuousClock.now
        var staged = spec
        staged.image.kernelPath = try await imageVolume(spec.image.kernelPath, what: "the kernel", image: spec.image, in: pool)
        staged.image.rootfsPath = try await imageVolume(spec.image.rootfsPath, what: "the rootfs", image: spec.image, in: pool)
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let (connection, place) = (self.connection, self.place)
        let disks = spec.disks
        let entries = try await Self.blocking { () throws -> [StagedVolumes.Entry] in
            var entries: [StagedVolumes.Entry] = []
            do {
                for disk in disks {
                    let label = disk.serial.isEmpty ? (disk.path as NSString).lastPathComponent : disk.serial
                    let operation = "uploading \(label) (\(disk.path)) to \(place)"
                    let size = try Self.size(of: disk.path, operation)
                    let volume = try pool.createVolume(name: "\(machine)-\(token)-\(label)", capacity: size)
                    // Recorded before the upload, so a failed upload is deleted too.
                    entries.append(StagedVolumes.Entry(volume: volume, local: disk.path, remote: "", label: label, writable: !disk.readOnly))
                    try volume.upload(from: disk.path, through: connection, operation: operation)
                    entries[entries.count - 1].remote = try volume.path()
                }
            } catch {
                for entry in entries { try? entry.volume.delete() }
                throw error
            }
            return entries
        }
        for (index, entry) in entries.enumerated() { staged.disks[index].path = entry.remote }
        let result = StagedVolumes(spec: staged, entries: entries, connection: connection, place: place)
        LibvirtLog.append(String(format: "volumes: machine '%@': %d volume(s) uploaded to %@ in %.0f ms", machine, entries.count, place,
                                 (ContinuousClock.now - began).milliseconds))
        return result
    }

    /// The pool path of an image file, uploaded once per image hash.
    private func imageVolume(_ local: String, what: String, image: NodeOSImage, in pool: StoragePool) async throws -> String {
        let name = "nodeos-\(image.manifest.imageHash)-\((local as NSString).lastPathComponent)"
        let (connection, place) = (self.connection, self.place)
        // One upload per file, however many machines start at once.
        return try await imageLock.withSlots(what: "waiting for the image upload's lock") {
            try await Self.blocking {
                let operation = "uploading \(what) (\(local)) to \(place)"
                let size = try Self.size(of: local, operation)
                if let existing = try pool.lookupVolume(name: name) {
                    if try existing.capacity() == size { return try existing.path() }
                    LibvirtLog.append("volumes: \(name) in \(place) has another size than \(local); uploading it again")
                    try existing.delete()
                }
                let volume = try pool.createVolume(name: name, capacity: size)
                do {
                    let began = ContinuousClock.now
                    try volume.upload(from: local, through: connection, operation: operation)
                    LibvirtLog.append(String(format: "volumes: %@ uploaded to %@ as %@ (%llu bytes) in %.0f ms", what, place, name, size,
                                             (ContinuousClock.now - began).milliseconds))
                    return try volume.path()
                } catch {
                    // Never leave a half-written image volume that a later run would take as complete.
                    try? volume.delete()
                    throw error
                }
            }
        }
    }

    static func size(of path: String, _ operation: String) throws -> UInt64 {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw TestbedError.setup("\(operation): cannot read \(path): \(error.localizedDescription)")
        }
        let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        guard size > 0 else { throw TestbedError.setup("\(operation): \(path) is empty") }
        return size
    }

    /// Runs libvirt calls off the cooperative pool; libvirt errors become ``TestbedError/libvirt(_:)``.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await Blocking.run(body)
        } catch let error as LibvirtError {
            throw TestbedError.libvirt(error)
        }
    }
}

/// One machine's volumes in a storage pool: the spec that names them, and
/// what to write back and delete once the machine is gone.
public final class StagedVolumes: Sendable {
    struct Entry: Sendable {
        var volume: StorageVolume
        var local: String
        /// The volume's path on the libvirt host.
        var remote: String
        var label: String
        var writable: Bool
    }

    /// The machine's spec with pool paths for the kernel, rootfs and disks.
    public let spec: MachineSpec
    private let finished = Atomic<Bool>(false)
    let entries: [Entry]
    private let connection: Connection
    private let place: String

    init(spec: MachineSpec, entries: [Entry], connection: Connection, place: String) {
        self.spec = spec
        self.entries = entries
        self.connection = connection
        self.place = place
        Cleanup.register(staged: self)
    }

    /// Writes each writable volume back into its local file (when `download`),
    /// then deletes every volume of the machine. Call once the machine is gone;
    /// later calls do nothing. Returns what went wrong, one line each.
    public func finish(download: Bool) async -> [String] {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return [] }
        let (entries, connection, place) = (self.entries, self.connection, self.place)
        let problems = (try? await Blocking.run { () -> [String] in
            var problems: [String] = []
            for entry in entries {
                if download && entry.writable {
                    let began = ContinuousClock.now
                    do throws(LibvirtError) {
                        try entry.volume.download(to: entry.local, through: connection, operation: "downloading \(entry.label) from \(place) into \(entry.local)")
                        LibvirtLog.append(String(format: "volumes: %@ downloaded from %@ in %.0f ms", entry.label, place, (ContinuousClock.now - began).milliseconds))
                    } catch {
                        problems.append(error.description)
                    }
                }
                do throws(LibvirtError) {
                    try entry.volume.delete()
                } catch {
                    problems.append(error.description)
                }
            }
            return problems
        }) ?? []
        Cleanup.unregister(staged: self)
        for problem in problems { LibvirtLog.append("volumes: \(problem)") }
        return problems
    }

    /// Deletes the volumes without downloading (exit-time cleanup). Blocks.
    func deleteNow() {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for entry in entries { try? entry.volume.delete() }
    }
}

extension StoragePool {
    /// The XML of a `dir` pool: a folder on the libvirt host whose files are
    /// the volumes. Escaped with ``XMLText``, like the domain XML.
    public static func directoryXML(name: String, path: String) -> String {
        """
        <pool type='dir'>
          <name>\(XMLText.escape(name))</name>
          <target>
            <path>\(XMLText.escape(path))</path>
            <permissions>
              <mode>0711</mode>
            </permissions>
          </target>
        </pool>

        """
    }
}
