import Foundation

/// How the guest's CPU is emulated.
public enum Accelerator: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Hardware virtualisation through `/dev/kvm`.
    case kvm
    /// QEMU's software emulator: slow, works everywhere.
    case tcg

    /// How much longer waits take by default than under KVM.
    public var deadlineScale: Double {
        switch self {
        case .kvm: 1
        case .tcg: 10
        }
    }

    public var description: String { rawValue }
}

/// Everything needed to write a libvirt domain: the typed form of the XML.
///
/// Pure data; ``xml`` renders it. Golden files in the unit tests pin the output.
public struct DomainSpec: Sendable, Equatable {
    /// An extra virtio disk, found in the guest by its serial.
    public struct Disk: Sendable, Equatable {
        public var path: String
        public var serial: String
        public var readOnly: Bool
        public var format: String
        public init(path: String, serial: String, readOnly: Bool = false, format: String = "raw") {
            self.path = path
            self.serial = serial
            self.readOnly = readOnly
            self.format = format
        }
    }

    /// A QEMU user-mode (slirp) NIC, optionally captured into a pcap file.
    public struct Network: Sendable, Equatable {
        /// The address QEMU's user-mode network gives the guest (NodeOS's
        /// default when `nodeos.net` says nothing else).
        public static let guestAddress = "10.0.2.15"

        public var model: String
        /// QEMU `filter-dump` target; `nil` captures nothing.
        public var capturePath: String?
        /// No way out: QEMU's `restrict=on` drops every connection the guest
        /// opens through the NIC (to the host's loopback at 10.0.2.2 and
        /// beyond). What a guest is offered goes through the tunnel instead.
        public var restricted: Bool
        public init(model: String = "virtio", capturePath: String? = nil, restricted: Bool = false) {
            self.model = model
            self.capturePath = capturePath
            self.restricted = restricted
        }
    }

    /// One end of a private point-to-point Ethernet link between two
    /// machines: libvirt's `udp` interface, which needs no privilege and no
    /// host network (the frames travel as UDP datagrams on the QEMU host's loopback).
    public struct Link: Sendable, Equatable {
        public var name: String
        public var mac: String
        /// Where this end receives, and where the other end does.
        public var localPort: Int
        public var remotePort: Int
        /// QEMU `filter-dump` target for this link; `nil` captures nothing.
        public var capturePath: String?
        public init(name: String, mac: String, localPort: Int, remotePort: Int, capturePath: String? = nil) {
            self.name = name
            self.mac = mac
            self.localPort = localPort
            self.remotePort = remotePort
            self.capturePath = capturePath
        }

        /// The interface's alias (user aliases must start with `ua-`), for link-state changes.
        public var alias: String { "ua-link-\(name)" }

        /// The interface element, with its link up or down.
        public func xml(up: Bool = true) -> String {
            [
                "    <interface type='udp'>",
                "      <mac address='\(XMLText.escape(mac))'/>",
                "      <source address='127.0.0.1' port='\(remotePort)'>",
                "        <local address='127.0.0.1' port='\(localPort)'/>",
                "      </source>",
                "      <model type='virtio'/>",
                "      <link state='\(up ? "up" : "down")'/>",
                "      <alias name='\(XMLText.escape(alias))'/>",
                "    </interface>",
            ].joined(separator: "\n")
        }
    }

    public var name: String
    public var accelerator: Accelerator
    public var memoryMiB: Int
    public var vcpus: Int
    public var machineType: String
    public var emulator: String
    public var kernel: String
    public var commandLine: String
    /// The read-only root file system: always the first disk (`/dev/vda`).
    public var rootfs: String
    public var disks: [Disk]
    public var network: Network?
    /// Private links to other machines, after the user-mode NIC.
    public var links: [Link] = []
    /// The agent's virtio-serial channel (`org.nodeos.agent`).
    public var agentChannel: Bool
    /// The tunnel's virtio-serial channel (`org.nodeos.tunnel`): forwarded
    /// ports and the guest's way to the registry.
    public var tunnelChannel: Bool
    /// The root disk's device alias (user aliases must start with `ua-`).
    static let rootDiskAlias = "ua-nodeos-root"
    public var rng: Bool
    /// Balloon statistics period in seconds; `nil` for no balloon.
    public var balloonStatsPeriod: Int?
    /// A firmware ROM passed as QEMU's `-bios` (qboot boots in a fraction of
    /// SeaBIOS's time); `nil` keeps QEMU's default.
    public var firmware: String?
    /// qboot, the minimal firmware, where QEMU ships it.
    public static let qboot: String? = FileManager.default.fileExists(atPath: "/usr/share/qemu/qboot.rom") ? "/usr/share/qemu/qboot.rom" : nil
    /// The libvirt netdev id QEMU's `filter-dump` attaches to (libvirt names the first NIC's netdev `hostnet0`).
    public static let firstNetdevID = "hostnet0"
    /// The restricted NIC's netdev, QEMU's own: libvirt numbers its interfaces' netdevs from hostnet0.
    public static let restrictedNetdevID = "nodeosnet0"

    /// The netdev id of the user-mode NIC, for its capture.
    var userNetdevID: String { network?.restricted == true ? Self.restrictedNetdevID : Self.firstNetdevID }

    /// The netdev id libvirt gives a device with an alias: `host` and the alias.
    static func netdevID(_ link: Link) -> String { "host\(link.alias)" }

    public init(
        name: String, accelerator: Accelerator = .tcg, memoryMiB: Int = 256, vcpus: Int = 1,
        machineType: String = "pc", emulator: String = "/usr/bin/qemu-system-x86_64",
        kernel: String, commandLine: String, rootfs: String, disks: [Disk] = [],
        network: Network? = Network(), agentChannel: Bool = true, tunnelChannel: Bool = false, rng: Bool = true,
        balloonStatsPeriod: Int? = nil, firmware: String? = nil
    ) {
        self.tunnelChannel = tunnelChannel
        self.firmware = firmware
        self.name = name
        self.accelerator = accelerator
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.machineType = machineType
        self.emulator = emulator
        self.kernel = kernel
        self.commandLine = commandLine
        self.rootfs = rootfs
        self.disks = disks
        self.network = network
        self.agentChannel = agentChannel
        self.rng = rng
        self.balloonStatsPeriod = balloonStatsPeriod
    }

    /// The libvirt domain XML.
    public var xml: String {
        var x: [String] = []
        let capture = network?.capturePath
        x.append("<domain type='\(accelerator == .kvm ? "kvm" : "qemu")' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>")
        x.append("  <name>\(escape(name))</name>")
        x.append("  <memory unit='MiB'>\(memoryMiB)</memory>")
        x.append("  <vcpu>\(vcpus)</vcpu>")
        x.append("  <os>")
        x.append("    <type arch='x86_64' machine='\(escape(machineType))'>hvm</type>")
        if let firmware { x.append("    <loader readonly='yes' type='rom'>\(escape(firmware))</loader>") }
        x.append("    <kernel>\(escape(kernel))</kernel>")
        x.append("    <cmdline>\(escape(commandLine))</cmdline>")
        x.append("  </os>")
        x.append("  <features>")
        x.append("    <acpi/>")
        x.append("  </features>")
        // Under TCG QEMU's default CPU (qemu64) is the cheapest to emulate; node runs on it.
        if accelerator == .kvm { x.append("  <cpu mode='host-passthrough' check='none'/>") }
        x.append("  <clock offset='utc'/>")
        x.append("  <on_poweroff>destroy</on_poweroff>")
        x.append("  <on_reboot>restart</on_reboot>")
        x.append("  <on_crash>destroy</on_crash>")
        x.append("  <devices>")
        x.append("    <emulator>\(escape(emulator))</emulator>")
        let all = [Disk(path: rootfs, serial: "nodeos-root", readOnly: true)] + disks
        for (index, disk) in all.enumerated() {
            x.append("    <disk type='file' device='disk'>")
            x.append("      <driver name='qemu' type='\(escape(disk.format))'/>")
            x.append("      <source file='\(escape(disk.path))'/>")
            x.append("      <target dev='\(Self.diskName(index))' bus='virtio'/>")
            if disk.readOnly { x.append("      <readonly/>") }
            x.append("      <serial>\(escape(disk.serial))</serial>")
            if index == 0 { x.append("      <alias name='\(Self.rootDiskAlias)'/>") }
            x.append("    </disk>")
        }
        x.append("    <controller type='usb' model='none'/>")
        // QEMU's default is 31 ports, each a pair of virtqueues the guest sets
        // up at boot (virtio_console_init ~27 -> ~17 ms under TCG with 2).
        // Port 0 is reserved for a console, so the agent's port is 1 and the tunnel's 2.
        if agentChannel || tunnelChannel { x.append("    <controller type='virtio-serial' index='0' ports='\(tunnelChannel ? 3 : 2)'/>") }
        if let network, !network.restricted {
            x.append("    <interface type='user'>")
            x.append("      <model type='\(escape(network.model))'/>")
            x.append("    </interface>")
        }
        for link in links { x.append(link.xml()) }
        x.append("    <serial type='pty'>")
        x.append("      <target port='0'/>")
        x.append("    </serial>")
        x.append("    <console type='pty'>")
        x.append("      <target type='serial' port='0'/>")
        x.append("    </console>")
        for (wanted, channel) in [(agentChannel, AgentProtocol.channelName), (tunnelChannel, TunnelProtocol.channelName)] where wanted {
            x.append("    <channel type='unix'>")
            x.append("      <target type='virtio' name='\(channel)'/>")
            x.append("    </channel>")
        }
        x.append("    <video>")
        x.append("      <model type='none'/>")
        x.append("    </video>")
        if rng {
            x.append("    <rng model='virtio'>")
            x.append("      <backend model='random'>/dev/urandom</backend>")
            x.append("    </rng>")
        }
        if let period = balloonStatsPeriod {
            x.append("    <memballoon model='virtio'>")
            x.append("      <stats period='\(period)'/>")
            x.append("    </memballoon>")
        } else {
            x.append("    <memballoon model='none'/>")
        }
        x.append("  </devices>")
        // Without this capability libvirt reads the guest CPU's features in two
        // QMP calls instead of one `qom-get` per feature (about 400, ~0.3 s at
        // every start with QEMU 7.2, which lacks `qom-list-get`).
        x.append("  <qemu:capabilities>")
        x.append("    <qemu:del capability='cpu-unavailable-features'/>")
        x.append("  </qemu:capabilities>")
        // The root disk advertises a 1 MiB optimal I/O size, so the guest reads
        // ahead 2 MiB instead of 128 KiB while node pages itself in from erofs
        // (libvirt has no element for it; images/qemu-boot does the same).
        x.append("  <qemu:override>")
        x.append("    <qemu:device alias='\(Self.rootDiskAlias)'>")
        x.append("      <qemu:frontend>")
        x.append("        <qemu:property name='opt_io_size' type='unsigned' value='1048576'/>")
        x.append("      </qemu:frontend>")
        x.append("    </qemu:device>")
        x.append("  </qemu:override>")
        var arguments: [String] = []
        // libvirt's user interface has no `restrict`: the restricted NIC is
        // QEMU's own, under the netdev id libvirt would have given it, in the
        // last PCI slot (QEMU reads these arguments before libvirt's devices,
        // which take the low slots by address).
        if let network, network.restricted {
            arguments += ["-netdev", "user,id=\(Self.restrictedNetdevID),restrict=on",
                          "-device", "\(network.model == "virtio" ? "virtio-net-pci" : network.model),netdev=\(Self.restrictedNetdevID),id=nodeosnic0,bus=pci.0,addr=0x1f"]
        }
        if let capture {
            arguments += ["-object", "filter-dump,id=capture0,netdev=\(userNetdevID),file=\(capture.replacingOccurrences(of: ",", with: ",,"))"]
        }
        for link in links {
            guard let path = link.capturePath else { continue }
            arguments += ["-object", "filter-dump,id=capture-\(link.name),netdev=\(Self.netdevID(link)),file=\(path.replacingOccurrences(of: ",", with: ",,"))"]
        }
        if !arguments.isEmpty {
            x.append("  <qemu:commandline>")
            for argument in arguments { x.append("    <qemu:arg value='\(escape(argument))'/>") }
            x.append("  </qemu:commandline>")
        }
        x.append("</domain>")
        return x.joined(separator: "\n") + "\n"
    }

    /// `vda`, `vdb`, … `vdz`, `vdaa`, …
    public static func diskName(_ index: Int) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        var name = ""
        var n = index
        repeat {
            name = String(letters[n % 26]) + name
            n = n / 26 - 1
        } while n >= 0
        return "vd" + name
    }

    private func escape(_ text: String) -> String { XMLText.escape(text) }
}
