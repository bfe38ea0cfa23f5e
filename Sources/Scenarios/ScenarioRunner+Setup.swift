import Foundation
import NpmRegistry
import Testbed

extension Execution {
    // MARK: Setting up

    func prepare() async throws {
        if let problem = scenario.slotProblem(slots: Slots.machines.limit) {
            throw StepFailure(summary: problem, kind: .error)
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if let packages = scenario.registry {
            registry = try await Registry.start(packages: packages)
        }
        // Each network's two ends receive on ports of their own on the QEMU host's loopback.
        var linkPorts: [Int: [Int]] = [:]
        for definition in scenario.machines {
            for end in definition.networks where linkPorts[end.index] == nil {
                linkPorts[end.index] = [try LoopbackPorts.freeUDP(), try LoopbackPorts.freeUDP()]
            }
        }
        for definition in scenario.machines {
            let state = states[definition.name]!
            let image = try NodeOSImage(directory: definition.image)
            var spec = MachineSpec(name: "\(scenario.slug)-\(definition.name)", image: image)
            spec.memoryMiB = definition.memoryMiB
            spec.vcpus = definition.vcpus
            spec.kernelParameters = definition.kernelParameters
            spec.network = definition.network
            spec.capture = definition.capture
            spec.tunnel = definition.tunnel || !definition.services.isEmpty || !definition.forwards.isEmpty
            spec.restrictEgress = !definition.openEgress
            spec.serviceNames = definition.services.map(\.name)
            spec.allowedGuestErrors = Set(definition.allowedGuestErrors)
            spec.checks.removeAll { definition.ignoredChecks.contains($0.name) }
            let volumes = folder.appendingPathComponent("volumes-\(definition.name)")
            for home in definition.homes {
                var files: [String: Data] = [:]
                for (path, source) in home.files {
                    switch source {
                    case .text(let text): files[path] = Data(text.utf8)
                    case .host(let url): files[path] = try Data(contentsOf: url)
                    }
                }
                let volume = try HomeVolume.create(user: home.user, uid: home.uid, sizeMiB: home.sizeMiB, files: files, in: volumes)
                spec.attach(volume)
                state.homes[home.user] = volume
            }
            var config = BootConfig(hostname: definition.hostname)
            if let registry {
                // Through libvirt, so a remote host's guests reach this host's registry too.
                config.registry = spec.offer("registry", TunnelTarget(port: registry.port), atGuestPort: Self.registryGuestPort, in: &config).absoluteString
            }
            for user in definition.users {
                let hash = try user.password.map { try BootConfig.hashPassword($0, cost: 1024) }
                config.users[user.name] = .init(uid: user.uid ?? definition.homes.first { $0.user == user.name }?.uid,
                                                password: hash, packages: user.packages.isEmpty ? nil : user.packages)
            }
            for home in definition.homes where config.users[home.user] == nil && home.user != "root" {
                config.users[home.user] = .init(uid: home.uid)
            }
            if !definition.services.isEmpty { config.services = definition.services }
            for end in definition.networks {
                let ports = linkPorts[end.index]!
                spec.links.append(DomainSpec.Link(name: end.network, mac: end.mac, localPort: ports[end.end], remotePort: ports[1 - end.end],
                                                  capturePath: folder.appendingPathComponent("\(definition.name)-\(end.network).pcap").path))
                config.networks = (config.networks ?? []) + [.init(mac: end.mac, address: end.address)]
                let peer = scenario.machine(named: end.peer)
                config.hosts = (config.hosts ?? [:]).merging([end.peer: end.peerAddress]) { first, _ in first }
                if let host = peer?.hostname, host != end.peer { config.hosts?[host] = end.peerAddress }
            }
            if config.hostname != nil || config.registry != nil || !config.users.isEmpty || config.services != nil || config.tunnel != nil || config.networks != nil {
                try spec.configure(config, in: volumes)
            }
            state.spec = spec
        }
    }

    /// Where guests reach the registry: their own loopback, led to the host's registry by the tunnel.
    static let registryGuestPort = 4873
    static let registryGuestURL = "http://127.0.0.1:\(registryGuestPort)/"
}
