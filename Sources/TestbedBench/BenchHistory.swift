import Foundation
import Testbed

/// Bench results over time: one JSON document per run in a folder. Chosen
/// over SQLite because a run is written once and read whole, files diff and
/// sync with ordinary tools (jq, rsync, CI artifacts), concurrent runs never
/// lock each other, and it costs no dependency.
public struct BenchHistory: Sendable {
    public var folder: URL

    public init(folder: URL) { self.folder = folder }

    /// Appends a result; the file name carries its key (date, commit, image,
    /// accelerator, host), so a listing reads like a log.
    @discardableResult
    public func append(_ result: BenchResult) throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let f = result.facts
        let stamp = f.date.replacingOccurrences(of: ":", with: "")
        let safe = { (s: String) in s.replacingOccurrences(of: #"[^A-Za-z0-9._-]"#, with: "_", options: .regularExpression) }
        let file = folder.appendingPathComponent("\(stamp)-\(safe(f.commit))-\(safe(f.imageHash))-\(f.accelerator)-\(safe(f.host)).json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: file)
        return file
    }

    /// Every readable result, oldest first; unreadable files are skipped and named.
    public func load() -> (results: [BenchResult], skipped: [String]) {
        let files = ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        var results: [BenchResult] = []
        var skipped: [String] = []
        for file in files {
            if let data = try? Data(contentsOf: file), let result = try? JSONDecoder().decode(BenchResult.self, from: data) {
                results.append(result)
            } else {
                skipped.append(file.lastPathComponent)
            }
        }
        return (results, skipped)
    }
}
