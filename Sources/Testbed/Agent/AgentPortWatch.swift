import Foundation
import Libvirt

/// Tells when the guest closes a virtio-serial port. The host end of the
/// channel never sees an end of stream when the guest side closes, but QEMU
/// reports the port's state to libvirt, which shows it in the live domain XML
/// (`<target type='virtio' name='…' state='disconnected'/>`).
enum AgentPortWatch {
    /// How often the live XML is read while a request waits.
    static let interval: Duration = .seconds(2)

    /// Returns once the port named `channel` is disconnected; runs until
    /// cancelled otherwise. Errors reading the XML count as "still there":
    /// the domain's own lifecycle events report a machine that went away.
    static func untilClosed(_ domain: Domain, channel: String) async throws {
        while true {
            try await Task.sleep(for: interval, clock: .continuous)
            guard let xml = try? await Blocking.run({ try domain.xmlDescription() }) else { continue }
            if state(of: channel, inDomainXML: xml) == "disconnected" { return }
        }
    }

    /// The `state` attribute of the virtio channel target named `channel`.
    static func state(of channel: String, inDomainXML xml: String) -> String? {
        var searchFrom = xml.startIndex
        while let target = xml.range(of: "<target ", range: searchFrom..<xml.endIndex) {
            guard let end = xml.range(of: ">", range: target.upperBound..<xml.endIndex) else { return nil }
            let element = xml[target.lowerBound..<end.upperBound]
            searchFrom = end.upperBound
            guard element.contains("name='\(channel)'") || element.contains("name=\"\(channel)\"") else { continue }
            for quote in ["'", "\""] {
                if let start = element.range(of: "state=\(quote)"),
                   let close = element.range(of: quote, range: start.upperBound..<element.endIndex) {
                    return String(element[start.upperBound..<close.lowerBound])
                }
            }
            return nil
        }
        return nil
    }
}
