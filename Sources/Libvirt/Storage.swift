import CLibvirt
import Foundation

/// A libvirt storage pool handle, owned once and freed once.
///
/// ```swift
/// let pool = try connection.lookupStoragePool(name: "nodeos-testbed")  // defining one: see `StoragePool.directoryXML` in Testbed
///     ?? connection.defineStoragePool(xml: StoragePool.directoryXML(name: "nodeos-testbed", path: "/var/lib/libvirt/nodeos-testbed"), name: "nodeos-testbed")
/// let volume = try pool.createVolume(name: "alice.ext4", capacity: 64 << 20)
/// try volume.upload(from: "/tmp/home-alice.ext4", through: connection, operation: "uploading home-alice")
/// ```
public final class StoragePool: @unchecked Sendable {
    // libvirt pool objects are thread-safe and reference-counted; the pointer never changes.
    private let handle: OpaquePointer
    /// The pool's name.
    public let name: String

    init(owning handle: OpaquePointer, name: String) {
        self.handle = handle
        self.name = name
    }

    deinit {
        _ = virStoragePoolFree(handle)
    }

    /// Whether the pool is started.
    public func isActive() -> Bool { virStoragePoolIsActive(handle) == 1 }

    /// Creates the pool's folder on its host (`virStoragePoolBuild`); harmless when it exists.
    public func build() throws(LibvirtError) {
        try Libvirt.call("building storage pool '\(name)'") { virStoragePoolBuild(handle, 0) }
    }

    /// Starts the pool (`virStoragePoolCreate`).
    public func start() throws(LibvirtError) {
        try Libvirt.call("starting storage pool '\(name)'") { virStoragePoolCreate(handle, 0) }
    }

    /// Stops the pool; its volumes stay on disk.
    public func stop() throws(LibvirtError) {
        try Libvirt.call("stopping storage pool '\(name)'") { virStoragePoolDestroy(handle) }
    }

    /// Forgets a persistent pool's definition (stop it first).
    public func undefine() throws(LibvirtError) {
        try Libvirt.call("undefining storage pool '\(name)'") { virStoragePoolUndefine(handle) }
    }

    /// Starts the pool with the host, if `enabled`.
    public func setAutostart(_ enabled: Bool) throws(LibvirtError) {
        try Libvirt.call("setting autostart of storage pool '\(name)'") { virStoragePoolSetAutostart(handle, enabled ? 1 : 0) }
    }

    /// Re-reads the pool's folder, so files made outside libvirt become volumes.
    public func refresh() throws(LibvirtError) {
        try Libvirt.call("refreshing storage pool '\(name)'") { virStoragePoolRefresh(handle, 0) }
    }

    /// The pool's XML, as libvirt completed it.
    public func xmlDescription() throws(LibvirtError) -> String {
        let pointer = try Libvirt.call("reading the XML of storage pool '\(name)'") { virStoragePoolGetXMLDesc(handle, 0) }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The folder the pool keeps its volumes in, read from its XML.
    public func targetPath() throws(LibvirtError) -> String {
        let xml = try xmlDescription()
        guard let target = xml.range(of: "<target>"),
              let open = xml.range(of: "<path>", range: target.upperBound..<xml.endIndex),
              let close = xml.range(of: "</path>", range: open.upperBound..<xml.endIndex) else {
            throw LibvirtError(operation: "reading the target path of storage pool '\(name)'", code: 0, domain: 0,
                               message: "its XML has no <target><path>")
        }
        return String(xml[open.upperBound..<close.lowerBound])
    }

    /// The volume called `name`, or `nil` when the pool has none by that name.
    public func lookupVolume(name volume: String) throws(LibvirtError) -> StorageVolume? {
        do throws(LibvirtError) {
            let pointer = try Libvirt.call("looking up volume '\(volume)' in storage pool '\(name)'") {
                virStorageVolLookupByName(handle, volume)
            }
            return StorageVolume(owning: pointer, name: volume, pool: name)
        } catch where error.code == Int32(VIR_ERR_NO_STORAGE_VOL.rawValue) {
            return nil
        }
    }

    /// The names of the pool's volumes.
    public func volumeNames() throws(LibvirtError) -> [String] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try Libvirt.call("listing the volumes of storage pool '\(name)'") { virStoragePoolListAllVolumes(handle, &list, 0) }
        guard let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { index in
            guard let pointer = list[index] else { return nil }
            defer { _ = virStorageVolFree(pointer) }
            return virStorageVolGetName(pointer).map { String(cString: $0) }
        }
    }

    /// Creates an empty raw volume of `capacity` bytes (a file in a `dir` pool).
    public func createVolume(name volume: String, capacity: UInt64, format: String = "raw") throws(LibvirtError) -> StorageVolume {
        let xml = """
            <volume>
              <name>\(volume.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;"))</name>
              <capacity unit='bytes'>\(capacity)</capacity>
              <allocation unit='bytes'>0</allocation>
              <target>
                <format type='\(format)'/>
                <permissions>
                  <mode>0600</mode>
                </permissions>
              </target>
            </volume>

            """
        let pointer = try Libvirt.call("creating volume '\(volume)' in storage pool '\(name)'") {
            virStorageVolCreateXML(handle, xml, 0)
        }
        return StorageVolume(owning: pointer, name: volume, pool: name)
    }
}

/// A libvirt storage volume handle, owned once and freed once.
public final class StorageVolume: @unchecked Sendable {
    // libvirt volume objects are thread-safe and reference-counted; the pointer never changes.
    private let handle: OpaquePointer
    /// The volume's name in its pool.
    public let name: String
    /// The pool's name.
    public let pool: String

    init(owning handle: OpaquePointer, name: String, pool: String) {
        self.handle = handle
        self.name = name
        self.pool = pool
    }

    deinit {
        _ = virStorageVolFree(handle)
    }

    /// The volume's path on the libvirt host (what a domain's `<source file>` names).
    public func path() throws(LibvirtError) -> String {
        let pointer = try Libvirt.call("reading the path of volume '\(name)' in storage pool '\(pool)'") { virStorageVolGetPath(handle) }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The volume's size in bytes (its capacity).
    public func capacity() throws(LibvirtError) -> UInt64 {
        var info = virStorageVolInfo()
        try Libvirt.call("reading the size of volume '\(name)' in storage pool '\(pool)'") { virStorageVolGetInfo(handle, &info) }
        return info.capacity
    }

    /// Deletes the volume (its file) from the pool.
    public func delete() throws(LibvirtError) {
        try Libvirt.call("deleting volume '\(name)' from storage pool '\(pool)'") { virStorageVolDelete(handle, 0) }
    }

    /// Writes the whole of the local file `file` into the volume through a
    /// libvirt stream (`virStorageVolUpload`). The stream is sparse: only the
    /// file's data travels, its holes go as lengths (a fresh 64 MiB ext4 home
    /// is mostly holes). Blocks: run it off Swift's cooperative pool.
    ///
    /// - Parameter operation: what is being done, for errors ("uploading home-alice to pool …").
    public func upload(from file: String, through connection: Connection, operation: String) throws(LibvirtError) {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.systemError(operation, "cannot open \(file)") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw Self.systemError(operation, "cannot stat \(file)") }
        let stream = try TransferStream(connection, operation)
        try Libvirt.call(operation) {
            virStorageVolUpload(handle, stream.handle, 0, UInt64(status.st_size), UInt32(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM.rawValue))
        }
        // libvirt reads through these, on this thread, until the file ends.
        let read: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = { _, data, count, opaque in
            let fd = Int32(Int(bitPattern: opaque))
            while true {
                let n = Foundation.read(fd, data, count)
                if n < 0 && errno == EINTR { continue }
                return Int32(n)
            }
        }
        let inData: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int64>?, UnsafeMutableRawPointer?) -> Int32 = { _, inData, length, opaque in
            guard let section = FileSection.at(fd: Int32(Int(bitPattern: opaque))) else { return -1 }
            inData?.pointee = section.inData ? 1 : 0
            length?.pointee = section.length
            return 0
        }
        let skip: @convention(c) (OpaquePointer?, Int64, UnsafeMutableRawPointer?) -> Int32 = { _, length, opaque in
            lseek(Int32(Int(bitPattern: opaque)), off_t(length), SEEK_CUR) < 0 ? -1 : 0
        }
        let opaque = UnsafeMutableRawPointer(bitPattern: Int(fd))
        do throws(LibvirtError) {
            try Libvirt.call(operation) { virStreamSparseSendAll(stream.handle, read, inData, skip, opaque) }
            try stream.finish(operation)
        } catch {
            stream.abort()
            throw error
        }
    }

    /// Reads the whole volume into the local file `file` (replaced only once
    /// every byte arrived) through a sparse libvirt stream
    /// (`virStorageVolDownload`): holes stay holes on this side too.
    /// Blocks: run it off Swift's cooperative pool.
    public func download(to file: String, through connection: Connection, operation: String) throws(LibvirtError) {
        let partial = file + ".download-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.systemError(operation, "cannot create \(partial)") }
        var closed = false
        defer {
            if !closed { close(fd) }
            unlink(partial)
        }
        let stream = try TransferStream(connection, operation)
        try Libvirt.call(operation) { virStorageVolDownload(handle, stream.handle, 0, 0, UInt32(VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM.rawValue)) }
        let write: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = { _, data, count, opaque in
            guard let data else { return -1 }
            let fd = Int32(Int(bitPattern: opaque))
            var written = 0
            while written < count {
                let n = Foundation.write(fd, data + written, count - written)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return -1 }
                written += n
            }
            return Int32(count)
        }
        let hole: @convention(c) (OpaquePointer?, Int64, UnsafeMutableRawPointer?) -> Int32 = { _, length, opaque in
            lseek(Int32(Int(bitPattern: opaque)), off_t(length), SEEK_CUR) < 0 ? -1 : 0
        }
        do throws(LibvirtError) {
            try Libvirt.call(operation) { virStreamSparseRecvAll(stream.handle, write, hole, UnsafeMutableRawPointer(bitPattern: Int(fd))) }
            try stream.finish(operation)
        } catch {
            stream.abort()
            throw error
        }
        // A hole at the end moved the offset without growing the file.
        let size = lseek(fd, 0, SEEK_CUR)
        guard size >= 0, ftruncate(fd, size) == 0, fsync(fd) == 0 else { throw Self.systemError(operation, "cannot finish \(partial)") }
        close(fd)
        closed = true
        guard rename(partial, file) == 0 else { throw Self.systemError(operation, "cannot replace \(file)") }
    }

    static func systemError(_ operation: String, _ what: String) -> LibvirtError {
        let code = errno
        return LibvirtError(operation: operation, code: Int32(VIR_ERR_SYSTEM_ERROR.rawValue), domain: 0,
                            message: "\(what): \(String(cString: strerror(code)))")
    }
}

/// Where a file's current offset is: in data or in a hole, and for how many
/// bytes more (`SEEK_DATA` / `SEEK_HOLE`); the offset is left where it was.
struct FileSection: Equatable {
    var inData: Bool
    var length: Int64

    // Linux's values; glibc declares them only under _GNU_SOURCE, which Swift's Glibc module does not set.
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    static func at(fd: Int32) -> FileSection? {
        let current = lseek(fd, 0, SEEK_CUR)
        guard current >= 0 else { return nil }
        defer { lseek(fd, current, SEEK_SET) }
        let data = lseek(fd, current, seekData)
        if data < 0 {
            // No data after here: a hole up to the end (nothing at the very end).
            guard errno == ENXIO else { return nil }
            let end = lseek(fd, 0, SEEK_END)
            guard end >= 0 else { return nil }
            return FileSection(inData: false, length: Int64(end - current))
        }
        if data > current { return FileSection(inData: false, length: Int64(data - current)) }
        let hole = lseek(fd, current, seekHole)
        guard hole >= 0 else { return nil }
        return FileSection(inData: true, length: Int64(hole - current))
    }
}

/// A blocking stream for one volume transfer, freed once.
private final class TransferStream {
    let handle: OpaquePointer
    private var open = true

    init(_ connection: Connection, _ operation: String) throws(LibvirtError) {
        handle = try connection.withHandle { (connection) throws(LibvirtError) -> OpaquePointer in
            try Libvirt.call(operation) { virStreamNew(connection, 0) }
        }
    }

    deinit {
        if open { _ = virStreamAbort(handle) }
        _ = virStreamFree(handle)
        virResetLastError()
    }

    func finish(_ operation: String) throws(LibvirtError) {
        open = false
        try Libvirt.call(operation) { virStreamFinish(handle) }
    }

    /// Aborts the transfer (harmless when libvirt already did, as the `…All` calls do on failure).
    func abort() {
        guard open else { return }
        open = false
        _ = virStreamAbort(handle)
        virResetLastError()
    }
}

extension Connection {
    /// The storage pool called `name`, or `nil` when this connection has none by that name.
    public func lookupStoragePool(name: String) throws(LibvirtError) -> StoragePool? {
        do throws(LibvirtError) {
            let pointer = try withHandle { (connection) throws(LibvirtError) -> OpaquePointer in
                try Libvirt.call("looking up storage pool '\(name)' on '\(uri)'") { virStoragePoolLookupByName(connection, name) }
            }
            return StoragePool(owning: pointer, name: name)
        } catch where error.code == Int32(VIR_ERR_NO_STORAGE_POOL.rawValue) {
            return nil
        }
    }

    /// Defines a persistent storage pool from XML (not started: see ``StoragePool/start()``).
    public func defineStoragePool(xml: String, name: String) throws(LibvirtError) -> StoragePool {
        let pointer = try withHandle { (connection) throws(LibvirtError) -> OpaquePointer in
            try Libvirt.call("defining storage pool '\(name)' on '\(uri)'") { virStoragePoolDefineXML(connection, xml, 0) }
        }
        return StoragePool(owning: pointer, name: name)
    }
}
