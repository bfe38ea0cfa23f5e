import Foundation

/// Memory of a running machine, in KiB.
public struct MemoryReport: Sendable, Equatable, Codable {
    /// Guest `MemTotal`.
    public var guestTotalKiB: UInt64?
    /// Guest `MemAvailable`.
    public var guestAvailableKiB: UInt64?
    /// `MemTotal − MemAvailable`: what the guest really uses.
    public var guestUsedKiB: UInt64?
    /// PID 1's resident set.
    public var initRssKiB: UInt64?
    /// The QEMU process's resident set on the host (libvirt's memory stats).
    public var qemuRssKiB: UInt64?

    public init(guestTotalKiB: UInt64? = nil, guestAvailableKiB: UInt64? = nil, initRssKiB: UInt64? = nil, qemuRssKiB: UInt64? = nil) {
        self.guestTotalKiB = guestTotalKiB
        self.guestAvailableKiB = guestAvailableKiB
        if let total = guestTotalKiB, let available = guestAvailableKiB, total >= available {
            guestUsedKiB = total - available
        }
        self.initRssKiB = initRssKiB
        self.qemuRssKiB = qemuRssKiB
    }
}

/// How a boot went: each phase in milliseconds since the host started the
/// machine, memory, and what ran (accelerator, image, kernel, node).
public struct BootReport: Sendable, Equatable {
    public var machine: String
    /// Phase name → milliseconds since host start, in the order they happened:
    /// `hostStart` (0), `firstConsoleByte`, `kernel`, `node`, `init`, …, `ready`, `agentReady`.
    public var phases: [(name: String, milliseconds: Double)]
    /// The guest's own clock (CLOCK_BOOTTIME, ms) for each phase line.
    public var guestPhases: [(name: String, milliseconds: Double)]
    public var memory: MemoryReport?
    public var accelerator: Accelerator
    public var imageHash: String
    public var kernelVersion: String
    public var nodeVersion: String
    public var bootID: String?
    public var libvirtURI: String
    /// Wall-clock time the machine was started (ISO 8601).
    public var startedAt: String
    public var artifacts: String
    /// `nodeos: error …` lines and default checks that fired.
    public var problems: [String]
    /// Milliseconds from the start of the process (the command) to host start,
    /// when the caller measured it (the CLI does).
    public var processToHostStartMs: Double?

    public init(
        machine: String, phases: [(name: String, milliseconds: Double)], guestPhases: [(name: String, milliseconds: Double)],
        memory: MemoryReport?, accelerator: Accelerator, imageHash: String, kernelVersion: String, nodeVersion: String,
        bootID: String?, libvirtURI: String, startedAt: String, artifacts: String, problems: [String], processToHostStartMs: Double? = nil
    ) {
        self.machine = machine
        self.phases = phases
        self.guestPhases = guestPhases
        self.memory = memory
        self.accelerator = accelerator
        self.imageHash = imageHash
        self.kernelVersion = kernelVersion
        self.nodeVersion = nodeVersion
        self.bootID = bootID
        self.libvirtURI = libvirtURI
        self.startedAt = startedAt
        self.artifacts = artifacts
        self.problems = problems
        self.processToHostStartMs = processToHostStartMs
    }

    public static func == (a: BootReport, b: BootReport) -> Bool {
        a.machine == b.machine && a.phases.elementsEqual(b.phases, by: { $0 == $1 })
            && a.guestPhases.elementsEqual(b.guestPhases, by: { $0 == $1 }) && a.memory == b.memory
            && a.accelerator == b.accelerator && a.imageHash == b.imageHash && a.kernelVersion == b.kernelVersion
            && a.nodeVersion == b.nodeVersion && a.bootID == b.bootID && a.problems == b.problems
            && a.processToHostStartMs == b.processToHostStartMs
    }

    /// Milliseconds since host start of one phase.
    public subscript(phase: String) -> Double? { phases.first { $0.name == phase }?.milliseconds }

    /// The report as ordered JSON (phases in the order they happened).
    public var orderedJSON: OrderedJSON {
        func pairs(_ list: [(name: String, milliseconds: Double)]) -> OrderedJSON {
            .object(list.map { ($0.name, .number(($0.milliseconds * 1000).rounded() / 1000)) })
        }
        func kib(_ value: UInt64?) -> OrderedJSON { value.map { .number(Double($0)) } ?? .null }
        var fields: [(String, OrderedJSON)] = [
            ("machine", .string(machine)),
            ("phases", pairs(phases)),
            ("guestPhases", pairs(guestPhases)),
        ]
        if let memory {
            fields.append(("memory", .object([
                ("guestTotalKiB", kib(memory.guestTotalKiB)),
                ("guestAvailableKiB", kib(memory.guestAvailableKiB)),
                ("guestUsedKiB", kib(memory.guestUsedKiB)),
                ("initRssKiB", kib(memory.initRssKiB)),
                ("qemuRssKiB", kib(memory.qemuRssKiB)),
            ])))
        } else {
            fields.append(("memory", .null))
        }
        fields += [
            ("accelerator", .string(accelerator.rawValue)),
            ("imageHash", .string(imageHash)),
            ("kernelVersion", .string(kernelVersion)),
            ("nodeVersion", .string(nodeVersion)),
            ("bootId", bootID.map(OrderedJSON.string) ?? .null),
            ("libvirtURI", .string(libvirtURI)),
            ("startedAt", .string(startedAt)),
            ("artifacts", .string(artifacts)),
            ("problems", .array(problems.map(OrderedJSON.string))),
        ]
        if let processToHostStartMs {
            fields.append(("processToHostStartMs", .number((processToHostStartMs * 10).rounded() / 10)))
            if let ready = self["ready"] {
                fields.append(("processToReadyMs", .number(((processToHostStartMs + ready) * 10).rounded() / 10)))
            }
        }
        return .object(fields)
    }

    /// Pretty JSON, keys in a fixed order.
    public var json: String { orderedJSON.render(pretty: true) }
}

/// JSON whose object keys keep their order (Foundation's encoder sorts or shuffles them).
public indirect enum OrderedJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    public static func == (a: OrderedJSON, b: OrderedJSON) -> Bool { a.render(pretty: false) == b.render(pretty: false) }

    /// JSON text; `pretty` indents by two spaces.
    public func render(pretty: Bool, indent: Int = 0) -> String {
        let pad = pretty ? String(repeating: " ", count: indent + 2) : ""
        let close = pretty ? String(repeating: " ", count: indent) : ""
        let newline = pretty ? "\n" : ""
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
            return String(value)
        case .string(let value): return JSONValue.string(value).jsonText
        case .array(let values):
            if values.isEmpty { return "[]" }
            return "[" + newline + values.map { pad + $0.render(pretty: pretty, indent: indent + 2) }.joined(separator: "," + newline) + newline + close + "]"
        case .object(let pairs):
            if pairs.isEmpty { return "{}" }
            let sep = pretty ? ": " : ":"
            return "{" + newline + pairs.map { pad + JSONValue.string($0.0).jsonText + sep + $0.1.render(pretty: pretty, indent: indent + 2) }.joined(separator: "," + newline) + newline + close + "}"
        }
    }
}
