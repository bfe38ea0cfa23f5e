// A small DEFLATE (RFC 1951) compressor: greedy LZ77 over a 32 KiB window with
// hash chains, coded in one block with the fixed Huffman tables. It compresses
// package tarballs (mostly zero padding and short text) to a few percent of
// their size, and its output depends only on its input: no zlib version or
// compression level can change a fixture's checksum.

enum Deflate {
    static let windowSize = 32 * 1024
    static let minMatch = 3
    static let maxMatch = 258
    static let maxChain = 64

    static func compress(_ data: [UInt8]) -> [UInt8] {
        var out = BitWriter()
        out.write(1, count: 1)  // BFINAL: the only block
        out.write(1, count: 2)  // BTYPE 01: fixed Huffman codes

        let hashSize = 1 << 15
        var head = [Int](repeating: -1, count: hashSize)
        var previous = [Int](repeating: -1, count: windowSize)
        func hash(_ i: Int) -> Int {
            (Int(data[i]) << 10 ^ Int(data[i + 1]) << 5 ^ Int(data[i + 2])) & (hashSize - 1)
        }
        func insert(_ i: Int) {
            guard i + minMatch <= data.count else { return }
            let h = hash(i)
            previous[i % windowSize] = head[h]
            head[h] = i
        }

        var i = 0
        while i < data.count {
            var bestLength = 0
            var bestDistance = 0
            if i + minMatch <= data.count {
                var candidate = head[hash(i)]
                var chain = maxChain
                let limit = min(maxMatch, data.count - i)
                while candidate >= 0 && i - candidate <= windowSize && chain > 0 {
                    var length = 0
                    while length < limit && data[candidate + length] == data[i + length] { length += 1 }
                    if length > bestLength {
                        bestLength = length
                        bestDistance = i - candidate
                        if length == limit { break }
                    }
                    let next = previous[candidate % windowSize]
                    if next >= candidate { break }  // slot reused by a newer position
                    candidate = next
                    chain -= 1
                }
            }
            if bestLength >= minMatch {
                out.writeLength(bestLength)
                out.writeDistance(bestDistance)
                for j in i..<(i + bestLength) { insert(j) }
                i += bestLength
            } else {
                out.writeLiteral(Int(data[i]))
                insert(i)
                i += 1
            }
        }
        out.writeLiteral(256)  // end of block
        return out.finish()
    }
}

private struct BitWriter {
    private var bytes: [UInt8] = []
    private var buffer: UInt32 = 0
    private var filled: UInt32 = 0

    /// Writes the low `count` bits of `value`, least significant first.
    mutating func write(_ value: Int, count: Int) {
        buffer |= UInt32(value) << filled
        filled += UInt32(count)
        while filled >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            filled -= 8
        }
    }

    /// Huffman codes go most significant bit first.
    mutating func writeCode(_ code: Int, length: Int) {
        var reversed = 0
        for bit in 0..<length where code & (1 << bit) != 0 {
            reversed |= 1 << (length - 1 - bit)
        }
        write(reversed, count: length)
    }

    /// A literal/length symbol (0...287) with the fixed code of RFC 1951 3.2.6.
    mutating func writeLiteral(_ symbol: Int) {
        switch symbol {
        case 0...143: writeCode(0x30 + symbol, length: 8)
        case 144...255: writeCode(0x190 + symbol - 144, length: 9)
        case 256...279: writeCode(symbol - 256, length: 7)
        default: writeCode(0xC0 + symbol - 280, length: 8)
        }
    }

    mutating func writeLength(_ length: Int) {
        var code = lengthBase.count - 1
        while lengthBase[code] > length { code -= 1 }
        writeLiteral(257 + code)
        write(length - lengthBase[code], count: lengthExtra[code])
    }

    mutating func writeDistance(_ distance: Int) {
        var code = distanceBase.count - 1
        while distanceBase[code] > distance { code -= 1 }
        writeCode(code, length: 5)
        write(distance - distanceBase[code], count: distanceExtra[code])
    }

    mutating func finish() -> [UInt8] {
        if filled > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
        buffer = 0
        filled = 0
        return bytes
    }
}

private let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
private let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
private let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
private let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
