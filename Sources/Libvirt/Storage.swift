import CLibvirt
import Foundation
import Synchronization

/// A libvirt storage pool handle, owned once and freed once.
///
/// ```swift
/// let pool = try connection.lookupStoragePool(name: "nodeos-testbed")
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

    /// The XML of a `dir` pool: a folder on the libvirt host whose files are the volumes.
    public static func directoryXML(name: String, path: String) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
        }
        return """
            <pool type='dir'>
              <name>\(escape(name))</name>
              <target>
                <path>\(escape(path))</path>
                <permissions>
                  <mode>0711</mode>
                </permissions>
              </target>
            </pool>

            """
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

    /// The largest piece sent in one stream message: libvirt's remote protocol
    /// carries at most 256 KiB of stream data per message.
    static let chunkSize = 128 * 1024

    /// Writes the whole of the local file `file` into the volume, through a
    /// libvirt stream (`virStorageVolUpload`), in chunks. Blocks: run it off
    /// Swift's cooperative pool.
    ///
    /// - Parameter operation: what is being done, for errors ("uploading home-alice to pool …").
    public func upload(from file: String, through connection: Connection, operation: String) throws(LibvirtError) {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.systemError(operation, "cannot open \(file)") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw Self.systemError(operation, "cannot stat \(file)") }
        let size = UInt64(status.st_size)
        let stream = try TransferStream(connection, operation)
        try Libvirt.call(operation) { virStorageVolUpload(handle, stream.handle, 0, size, 0) }
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var sent: UInt64 = 0
        do throws(LibvirtError) {
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw Self.systemError(operation, "cannot read \(file)") }
                if count == 0 { break }
                try stream.send(buffer, count: count, operation)
                sent += UInt64(count)
            }
            guard sent == size else {
                throw LibvirtError(operation: operation, code: 0, domain: 0, message: "\(file) changed size while it was sent (\(sent) of \(size) bytes)")
            }
            try stream.finish(operation)
        } catch {
            stream.abort()
            throw error
        }
    }

    /// Reads the whole volume into the local file `file` (replaced only once
    /// every byte arrived), through a libvirt stream (`virStorageVolDownload`).
    /// Runs of zeros become holes, so a sparse volume stays sparse on this side.
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
        try Libvirt.call(operation) { virStorageVolDownload(handle, stream.handle, 0, 0, 0) }
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var received: Int64 = 0
        do throws(LibvirtError) {
            while true {
                let count = try stream.receive(into: &buffer, operation)
                if count == 0 { break }
                // All zero when the first byte is and every byte equals the next (memcmp: fast even in debug builds).
                let zero = buffer.withUnsafeBytes { $0[0] == 0 && memcmp($0.baseAddress!, $0.baseAddress! + 1, count - 1) == 0 }
                if zero {
                    guard lseek(fd, off_t(count), SEEK_CUR) >= 0 else { throw Self.systemError(operation, "cannot seek in \(partial)") }
                } else {
                    var written = 0
                    while written < count {
                        let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + written, count - written) }
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { throw Self.systemError(operation, "cannot write \(partial)") }
                        written += n
                    }
                }
                received += Int64(count)
            }
            try stream.finish(operation)
        } catch {
            stream.abort()
            throw error
        }
        guard ftruncate(fd, off_t(received)) == 0, fsync(fd) == 0 else { throw Self.systemError(operation, "cannot finish \(partial)") }
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

    func send(_ buffer: [UInt8], count: Int, _ operation: String) throws(LibvirtError) {
        var offset = 0
        while offset < count {
            let sent = buffer.withUnsafeBytes { bytes in
                virStreamSend(handle, bytes.baseAddress!.assumingMemoryBound(to: CChar.self) + offset, count - offset)
            }
            if sent < 0 { throw LibvirtError.fromLastError(operation) }
            offset += Int(sent)
        }
    }

    func receive(into buffer: inout [UInt8], _ operation: String) throws(LibvirtError) -> Int {
        let count = buffer.withUnsafeMutableBytes { bytes in
            virStreamRecv(handle, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        if count < 0 { throw LibvirtError.fromLastError(operation) }
        return Int(count)
    }

    func finish(_ operation: String) throws(LibvirtError) {
        open = false
        try Libvirt.call(operation) { virStreamFinish(handle) }
    }

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
