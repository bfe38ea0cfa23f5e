import Foundation
import Testbed

/// A static HTML page with SVG charts: the boot timeline per phase (testbed
/// against plain QEMU), the trend over the history, and memory. No scripts,
/// no external assets: it opens from a CI artifact as it is.
public enum BenchReport {
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    public static func html(latest: BenchResult, history: [BenchResult]) -> String {
        let f = latest.facts
        var page = """
        <!doctype html><html><head><meta charset="utf-8"><title>NodeOS boot bench \(escape(f.imageHash))</title>
        <style>body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
        table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}
        .bad{color:#c00;font-weight:bold}.ok{color:#070}.facts{color:#555}</style></head><body>
        <h1>NodeOS boot bench</h1>
        <p class="facts">image \(escape(f.imageHash)) · commit \(escape(f.commit)) · \(escape(f.accelerator)) · \(f.cores) cores · \(escape(f.host)) · \(escape(f.qemuVersion)) · kernel \(escape(f.kernelVersion)) · node \(escape(f.nodeVersion)) · \(escape(f.date))</p>
        """
        page += headline(latest)
        page += "<h2>Boot timeline to the ready line (median time in each phase)</h2>" + timelineSVG(latest)
        // A sum of per-phase medians is not the median of whole boots; say so
        // where the two numbers meet, or readers take one for a typo of the other.
        page += "<p class=\"facts\">Each bar ends at the sum of its phases' medians, which differs a little from the ready median above.</p>"
        let runs = history.isEmpty ? [latest] : history
        page += "<h2>Ready time over the history (median, ms)</h2>" + trendSVG(runs, series: ["testbed", "plain"]) { $0.summary.readyMs[$1]?.median }
        if runs.contains(where: { $0.summary.translationBlocks != nil }) {
            page += "<h2>TCG translation blocks at the ready line over the history (median)</h2>"
                + "<p class=\"facts\">How much guest code QEMU translated to reach the ready line: most of a cold TCG boot's time, and a count the host's load barely moves. "
                + "A step here is a change in the guest; a step in the ready time alone is the host.</p>"
                + trendSVG(runs, series: ["plain"], fromZero: false) { $0.summary.translationBlocks?[$1]?.median }
        }
        page += "<h2>Memory after boot (median, MiB)</h2>" + memorySVG(latest)
        page += phaseTable(latest)
        if let npm = latest.npmInstall, let g = npm.guest, let h = npm.host {
            page += "<h2>npm install -g \(escape(npm.package)) (s)</h2><table><tr><th>where</th><th>min</th><th>median</th><th>p90</th><th>installs</th></tr>"
            for (name, spread) in [("guest (a fresh home)", g), ("host npm, same node", h)] {
                page += String(format: "<tr><td>%@</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%d</td></tr>", name, spread.min / 1000, spread.median / 1000, spread.p90 / 1000, spread.n)
            }
            page += String(format: "</table><p>guest / host (median): <b>%.1f×</b></p>", npm.ratio ?? .nan)
        }
        if let verdicts = latest.verdicts {
            page += "<h2>Regression check against \(escape(latest.comparedWith ?? "the baseline"))</h2><table><tr><th>phase</th><th>baseline</th><th>candidate</th><th>difference</th><th>p</th><th>verdict</th></tr>"
            for v in verdicts {
                page += String(format: "<tr><td>%@</td><td>%.0f</td><td>%.0f</td><td>%+.0f</td><td>%.3f</td><td class=\"%@\">%@</td></tr>",
                               escape(v.phase), v.baselineMedianMs, v.candidateMedianMs, v.differenceMs, v.pValue,
                               v.regression ? "bad" : "ok", v.regression ? "regression" : "ok")
            }
            page += "</table>"
        }
        return page + "</body></html>\n"
    }

    static func headline(_ r: BenchResult) -> String {
        var rows = ""
        for (runner, spread) in r.summary.readyMs.sorted(by: { $0.key > $1.key }) {
            rows += String(format: "<tr><td>%@</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%d</td></tr>", escape(runner), spread.min, spread.median, spread.p90, spread.n)
        }
        let ratio = r.summary.ratio.map { String(format: "%.3f", $0) } ?? "–"
        return "<h2>Ready (host wall clock, ms)</h2><table><tr><th>runner</th><th>min</th><th>median</th><th>p90</th><th>boots</th></tr>\(rows)</table><p>testbed / plain (median): <b>\(ratio)</b></p>"
    }

    static func timelineSVG(_ r: BenchResult) -> String {
        let runners = r.summary.phases.keys.sorted(by: >)
        // The first segment is what the guest clock cannot see: QEMU's start,
        // firmware and kernel loading, and the host reading the ready line.
        let host = "host + firmware"
        let order = [host] + r.summary.phaseOrder
        func median(_ runner: String, _ phase: String) -> Double {
            if phase == host {
                let gaps = r.samples.filter { $0.runner == runner }.compactMap { s in s.phases.last.map { s.readyMs - $0.ms } }
                return max(Statistics.median(gaps) ?? 0, 0)
            }
            return r.summary.phases[runner]?[phase]?.median ?? 0
        }
        let totals = runners.map { runner in order.reduce(0.0) { $0 + median(runner, $1) } }
        let maxTotal = max(totals.max() ?? 1, 1)
        let width = 900.0, left = 90.0, barHeight = 28.0, gap = 14.0
        let scale = (width - left - 90) / maxTotal
        let legendTop = Double(runners.count) * (barHeight + gap) + 30
        let colors = ["#bbbbbb"] + palette
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(legendTop + 24 * Double((order.count + 4) / 5)))\" font-size=\"12\">"
        for (row, runner) in runners.enumerated() {
            let y = 10 + Double(row) * (barHeight + gap)
            svg += "<text x=\"0\" y=\"\(y + 18)\">\(escape(runner))</text>"
            var x = left
            for (i, phase) in order.enumerated() {
                let ms = median(runner, phase)
                let w = max(ms * scale, 0)
                svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%@\"><title>%@: %.0f ms</title></rect>", x, y, w, barHeight, colors[i % colors.count], escape(phase), ms)
                x += w
            }
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\">%.0f ms</text>", x + 4, y + 18, totals[row])
        }
        for (i, phase) in order.enumerated() {
            let x = Double(i % 5) * 170, y = legendTop + Double(i / 5) * 22
            svg += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%@\"/><text x=\"%.0f\" y=\"%.0f\">%@</text>", x, y, colors[i % colors.count], x + 16, y + 11, escape(phase))
        }
        return svg + "</svg>"
    }

    /// One line per series over the history. `fromZero: false` fits the axis
    /// to the values, for counts whose meaningful changes are a few percent.
    static func trendSVG(_ history: [BenchResult], series: [String], fromZero: Bool = true, value: (BenchResult, String) -> Double?) -> String {
        let width = 900.0, height = 260.0, left = 60.0, bottom = 40.0, top = 14.0
        let values = history.flatMap { h in series.compactMap { value(h, $0) } }
        let maxV = fromZero ? max(values.max() ?? 1, 1) * 1.1 : (values.max() ?? 1) * 1.01
        let minV = fromZero ? 0 : (values.min() ?? 0) * 0.99
        let stepX = history.count > 1 ? (width - left - 30) / Double(history.count - 1) : 0
        let y = { (v: Double) in top + (height - top - bottom) * (1 - (v - minV) / max(maxV - minV, 1)) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"11\">"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - 10)\" y2=\"\(height - bottom)\" stroke=\"#999\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"#999\"/>"
        for tick in 0...4 {
            let v = minV + (maxV - minV) * Double(tick) / 4
            svg += String(format: "<text x=\"4\" y=\"%.1f\">%.0f</text><line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>", y(v) + 4, v, left, y(v), width - 10, y(v))
        }
        for (s, name) in series.enumerated() {
            let points = history.enumerated().compactMap { i, h in value(h, name).map { (left + Double(i) * stepX, y($0)) } }
            guard !points.isEmpty else { continue }
            // A runner keeps its colour from chart to chart.
            let color = palette[(["testbed", "plain", "candidate"].firstIndex(of: name) ?? s) % palette.count]
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " "))\"/>"
            for p in points { svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", p.0, p.1, color) }
            svg += "<rect x=\"\(Int(width) - 160)\" y=\"\(Int(top) + s * 18)\" width=\"12\" height=\"12\" fill=\"\(color)\"/><text x=\"\(Int(width) - 144)\" y=\"\(Int(top) + 11 + s * 18)\">\(name)</text>"
        }
        for (i, h) in history.enumerated() where history.count <= 12 || i % max(history.count / 12, 1) == 0 {
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", left + Double(i) * stepX, height - bottom + 16, escape(String(h.facts.commit.prefix(7))))
        }
        return svg + "</svg>"
    }

    static func memorySVG(_ r: BenchResult) -> String {
        let m = r.summary.memory
        let bars: [(String, Double?)] = [("guest used", m.guestUsedMiB), ("init RSS", m.initRssMiB), ("QEMU RSS", m.qemuRssMiB)]
        let maxV = max(bars.compactMap(\.1).max() ?? 1, 48) * 1.1
        let width = 900.0, left = 90.0
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"120\" font-size=\"12\">"
        for (i, bar) in bars.enumerated() {
            let y = 8.0 + Double(i) * 32
            let w = (bar.1 ?? 0) / maxV * (width - left - 80)
            svg += String(format: "<text x=\"0\" y=\"%.0f\">%@</text><rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"22\" fill=\"%@\"/><text x=\"%.1f\" y=\"%.0f\">%@</text>",
                          y + 16, bar.0, left, y, w, palette[i], left + w + 4, y + 16, bar.1.map { String(format: "%.1f MiB", $0) } ?? "–")
        }
        let target = left + 48 / maxV * (width - left - 80)
        svg += String(format: "<line x1=\"%.1f\" y1=\"2\" x2=\"%.1f\" y2=\"70\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"112\" fill=\"#c00\">48 MiB target (guest used)</text>", target, target, target - 60)
        return svg + "</svg>"
    }

    static func phaseTable(_ r: BenchResult) -> String {
        var html = "<h2>Time in each phase (ms: min / median / p90)</h2><table><tr><th>phase</th>"
        let runners = r.summary.phases.keys.sorted(by: >)
        html += runners.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
        for phase in r.summary.phaseOrder {
            html += "<tr><td>\(escape(phase))</td>"
            for runner in runners {
                if let s = r.summary.phases[runner]?[phase] {
                    html += String(format: "<td>%.0f / %.0f / %.0f</td>", s.min, s.median, s.p90)
                } else { html += "<td>–</td>" }
            }
            html += "</tr>"
        }
        return html + "</table>"
    }

    static func escape(_ s: String) -> String { XMLText.escape(s) }
}
