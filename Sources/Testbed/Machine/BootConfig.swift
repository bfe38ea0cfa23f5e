import Foundation

/// The boot configuration a machine reads from its config volume (a raw disk
/// with serial `nodeos-config` holding NUL-padded JSON; images/PROTOCOL.md).
/// init validates it strictly and applies it all-or-nothing.
///
/// ```swift
/// var config = BootConfig(hostname: "builder")
/// config.users["alice"] = .init(uid: 1000, password: try BootConfig.hashPassword("s3cret"))
/// try spec.configure(config, in: workDirectory)
/// ```
public struct BootConfig: Sendable, Codable, Equatable {
    public struct User: Sendable, Codable, Equatable {
        public var uid: Int?
        public var gid: Int?
        /// An scrypt hash from ``BootConfig/hashPassword(_:)``; `nil` makes
        /// the account non-interactive (no console login).
        public var password: String?
        public var packages: [String]?
        public var shell: String?
        public init(uid: Int? = nil, gid: Int? = nil, password: String? = nil, packages: [String]? = nil, shell: String? = nil) {
            self.uid = uid
            self.gid = gid
            self.password = password
            self.packages = packages
            self.shell = shell
        }
    }

    public struct Service: Sendable, Codable, Equatable {
        public var name: String
        public var user: String?
        public var argv: [String]
        public var cwd: String?
        public var env: [String: String]?
        /// `always`, `on-failure` (default) or `never`.
        public var restart: String?
        public init(name: String, user: String? = nil, argv: [String], cwd: String? = nil, env: [String: String]? = nil, restart: String? = nil) {
            self.name = name
            self.user = user
            self.argv = argv
            self.cwd = cwd
            self.env = env
            self.restart = restart
        }
    }

    /// Guest listeners (on its 127.0.0.1) that lead to the host through the tunnel.
    public struct Tunnel: Sendable, Codable, Equatable {
        public struct Listener: Sendable, Codable, Equatable {
            public var name: String
            public var port: Int
            public init(name: String, port: Int) {
                self.name = name
                self.port = port
            }
        }

        public var listen: [Listener]
        public init(listen: [Listener]) { self.listen = listen }
    }

    public var hostname: String?
    /// The npm registry, as the guest reaches it (e.g. `http://10.0.2.2:4873/`).
    public var registry: String?
    public var users: [String: User]
    public var services: [Service]?
    public var tunnel: Tunnel?

    /// A NIC of a private network, found by its MAC in the guest.
    public struct Network: Sendable, Codable, Equatable {
        public var mac: String
        public var address: String
        public var prefix: Int
        public init(mac: String, address: String, prefix: Int = 24) {
            self.mac = mac
            self.address = address
            self.prefix = prefix
        }
    }

    public var networks: [Network]?
    /// Host names → addresses for the guest's /etc/hosts.
    public var hosts: [String: String]?

    public init(hostname: String? = nil, registry: String? = nil, users: [String: User] = [:], services: [Service]? = nil) {
        self.hostname = hostname
        self.registry = registry
        self.users = users
        self.services = services
    }

    /// The serial init looks for.
    public static let serial = "nodeos-config"

    /// The JSON document, keys sorted so the same config gives the same bytes.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// The volume's bytes: the JSON, NUL-padded to a multiple of 512.
    public static func volumeBytes(json: Data) -> Data {
        var bytes = json
        let padded = max(512, (bytes.count + 511) / 512 * 512)
        bytes.append(Data(count: padded - bytes.count))
        return bytes
    }

    /// Writes the config volume and returns the disk to attach.
    public func writeVolume(to file: URL) throws -> DomainSpec.Disk {
        try BootConfig.volumeBytes(json: json()).write(to: file)
        return DomainSpec.Disk(path: file.path, serial: BootConfig.serial, readOnly: true)
    }

    /// An scrypt hash in the guest's format, `scrypt$N$r$p$salt$hash` (base64),
    /// computed with OpenSSL's KDF so that no password crosses into the guest.
    public static func hashPassword(_ password: String, cost: Int = 16384) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255) }
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        let output = try HostCommand("openssl", [
            "kdf", "-keylen", "32", "-kdfopt", "hexpass:\(hex(Array(password.utf8)))", "-kdfopt", "hexsalt:\(hex(salt))",
            "-kdfopt", "n:\(cost)", "-kdfopt", "r:8", "-kdfopt", "p:1", "SCRYPT",
        ], step: "hashing a password with scrypt").run().stdoutText
        let hash = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").compactMap { UInt8($0, radix: 16) }
        guard hash.count == 32 else { throw HomeVolume.Error(description: "scrypt: unexpected openssl output '\(output)'") }
        return "scrypt$\(cost)$8$1$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }
}

extension MachineSpec {
    /// Writes `config` as this machine's config volume in `folder` and attaches it.
    public mutating func configure(_ config: BootConfig, in folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("\(name)-config.img")
        disks.removeAll { $0.serial == BootConfig.serial }
        disks.append(try config.writeVolume(to: file))
    }
}

extension MachineSpec {
    /// Offers a host service to the guest through the tunnel, whatever the
    /// libvirt host: guest processes reach `target` (on this host) at
    /// 127.0.0.1:`guestPort`. Returns that address as an http URL.
    @discardableResult
    public mutating func offer(_ name: String, _ target: TunnelTarget, atGuestPort guestPort: Int, in config: inout BootConfig) -> URL {
        tunnel = true
        tunnelTargets[name] = target
        var listeners = config.tunnel?.listen ?? []
        listeners.removeAll { $0.name == name }
        listeners.append(.init(name: name, port: guestPort))
        config.tunnel = .init(listen: listeners)
        return URL(string: "http://127.0.0.1:\(guestPort)/")!
    }
}
