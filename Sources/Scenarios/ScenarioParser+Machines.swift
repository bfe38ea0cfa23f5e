import Foundation
import Testbed
import Yams

extension Reader {
    // MARK: Machines

    func machine(_ name: String, _ field: Field, keyNode: Node) throws -> MachineDefinition {
        let keys: [String: Field]
        if case .scalar(let scalar) = field.node, scalar.style == .plain, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" {
            keys = [:] // `web:` alone: every default.
        } else {
            keys = try mapping(field, allowed: ["image", "memory", "vcpus", "hostname", "kernel-parameters", "network", "capture",
                                                "users", "homes", "allowed-guest-errors", "ignore-checks", "services", "forward", "egress"])
        }
        var image: URL
        if let value = keys["image"] {
            image = resolve(try string(value))
            try requireFile(image.appendingPathComponent("manifest.json"), value, what: "the NodeOS image (its manifest.json)", directory: false)
        } else {
            image = options.defaultImage ?? NodeOSImage.defaultDirectory()
            if options.checkFiles, !FileManager.default.fileExists(atPath: image.appendingPathComponent("manifest.json").path) {
                throw error(at: keyNode, field.path, "no NodeOS image at \(image.path): build it with '\(NodeOSImage.buildCommand)', set NODEOS_IMAGE, or give 'image:'")
            }
        }
        var definition = MachineDefinition(name: name, location: location(keyNode), image: image.standardizedFileURL)
        if let value = keys["memory"] {
            let kib = try size(value)
            guard kib >= 64 * 1024 else { throw error(value, "at least 64 MiB, got \(kib / 1024) MiB") }
            definition.memoryMiB = Int(kib / 1024)
        }
        if let value = keys["vcpus"] {
            let n = try int(value)
            guard (1...8).contains(n) else { throw error(value, "between 1 and 8, got \(n)") }
            definition.vcpus = n
        }
        if let value = keys["hostname"] {
            let host = try string(value)
            guard host.range(of: #"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"#, options: .regularExpression) != nil else {
                throw error(value, "'\(host)' is not a host name (lower-case letters, digits, '-')")
            }
            definition.hostname = host
        }
        if let value = keys["kernel-parameters"] { definition.kernelParameters = try stringList(value) }
        if let value = keys["network"] { definition.network = try bool(value) }
        if let value = keys["capture"] { definition.capture = try bool(value) }
        if definition.capture && !definition.network, let value = keys["capture"] {
            throw error(value, "capturing traffic needs a NIC: drop 'network: false'")
        }
        if let value = keys["allowed-guest-errors"] { definition.allowedGuestErrors = try stringList(value) }
        if let value = keys["ignore-checks"] {
            let names = try stringList(value)
            let known = Set(ConsoleCheck.defaults.map(\.name))
            for name in names where !known.contains(name) {
                throw error(value, "no default check named '\(name)' (checks: \(known.sorted().joined(separator: ", ")))")
            }
            definition.ignoredChecks = names
        }
        if let value = keys["users"] {
            for (user, userKey, child) in try entries(value) {
                try checkUserName(user, userKey, value.child(user))
                let fields = try mapping(child, allowed: ["uid", "password", "packages"], allowEmpty: true)
                var entry = MachineDefinition.User(name: user, uid: nil, password: nil, packages: [])
                if let uid = fields["uid"] { entry.uid = try uidValue(uid) }
                if let password = fields["password"] { entry.password = try string(password) }
                if let packages = fields["packages"] { entry.packages = try stringList(packages) }
                definition.users.append(entry)
            }
        }
        if let value = keys["homes"] {
            for (index, (user, userKey, child)) in try entries(value).enumerated() {
                try checkUserName(user, userKey, value.child(user))
                let fields = try mapping(child, allowed: ["uid", "size", "files"], allowEmpty: true)
                let declaredUID = definition.users.first { $0.name == user }?.uid
                var uid = declaredUID ?? 1000 + index
                if let value = fields["uid"] {
                    uid = try uidValue(value)
                    if let declaredUID, declaredUID != uid {
                        throw error(value, "\(user)'s home has uid \(uid) but users.\(user).uid is \(declaredUID)")
                    }
                }
                var sizeMiB = 64
                if let value = fields["size"] {
                    let kib = try size(value)
                    guard kib >= 8 * 1024 else { throw error(value, "a home volume is at least 8 MiB") }
                    sizeMiB = Int(kib / 1024)
                }
                var files: [(path: String, source: MachineDefinition.FileSource)] = []
                if let value = fields["files"] {
                    for (path, pathNode, content) in try entries(value) {
                        let filePath = value.child(path)
                        guard !path.hasPrefix("/"), !path.split(separator: "/").contains(".."), !path.isEmpty else {
                            throw error(at: pathNode, filePath, "a path inside the home: relative, without '..'")
                        }
                        if case .mapping = content.node {
                            let source = try mapping(content, allowed: ["from"])
                            guard let from = source["from"] else { throw error(content, "expected 'from: HOST-PATH' or the file's text") }
                            let url = resolve(try string(from))
                            try requireFile(url, from, what: "the file to copy into the home", directory: false)
                            files.append((path, .host(url)))
                        } else {
                            files.append((path, .text(try string(content))))
                        }
                    }
                }
                definition.homes.append(.init(user: user, uid: uid, sizeMiB: sizeMiB, files: files))
            }
        }
        if let value = keys["services"] {
            let users = Set(definition.users.map(\.name) + definition.homes.map(\.user) + ["root"])
            definition.services = try services(value, users: users)
        }
        if let value = keys["forward"] { definition.forwards = try forwards(value) }
        if let value = keys["egress"] {
            switch try string(value) {
            case "offered": definition.openEgress = false
            case "open": definition.openEgress = true
            case let other: throw error(value, "'offered' (the default: only the registry and forwarded ports, through the tunnel) or 'open' (the NIC reaches the host and beyond), not '\(other)'")
            }
        }
        return definition
    }

    func checkUserName(_ user: String, _ node: Node, _ path: String) throws {
        guard user.range(of: #"^[a-z_][a-z0-9_-]{0,31}$"#, options: .regularExpression) != nil else {
            throw error(at: node, path, "a user name is lower-case letters, digits, '_' and '-', starting with a letter or '_'")
        }
    }

    func uidValue(_ field: Field) throws -> Int {
        let uid = try int(field)
        guard (1...65_533).contains(uid) else { throw error(field, "a uid between 1 and 65533, got \(uid)") }
        return uid
    }
}
