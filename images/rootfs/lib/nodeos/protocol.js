'use strict';
// The agent's framing: one JSON object per line. The decoder is fed raw
// chunks and yields whole messages; it never buffers more than maxLine bytes.

class LineDecoder {
  constructor({ maxLine = 64 * 1024 * 1024 } = {}) {
    this.maxLine = maxLine;
    this.parts = [];
    this.length = 0;
    this.discarding = false;
  }

  // Returns an array of { message } or { error } for each complete line.
  push(chunk) {
    const out = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        this.parts = [];
        this.length = 0;
        continue;
      }
      const line = this.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.length = 0;
      out.push(decodeLine(line));
    }
    const rest = chunk.subarray(start);
    if (rest.length && !this.discarding) {
      if (this.length + rest.length > this.maxLine) {
        out.push({ error: { code: 'EPROTO', message: `line longer than ${this.maxLine} bytes discarded` } });
        this.discarding = true;
        this.parts = [];
        this.length = 0;
      } else {
        this.parts.push(Buffer.from(rest));
        this.length += rest.length;
      }
    }
    return out;
  }
}

function decodeLine(line) {
  const text = line.toString('utf8').replace(/\r$/, '');
  if (text.trim() === '') return { empty: true };
  let message;
  try {
    message = JSON.parse(text);
  } catch (e) {
    return { error: { code: 'EPROTO', message: `not JSON: ${e.message}` } };
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    return { error: { code: 'EPROTO', message: 'a frame must be a JSON object' } };
  }
  return { message };
}

function encode(object) {
  return Buffer.from(JSON.stringify(object) + '\n', 'utf8');
}

module.exports = { LineDecoder, encode };
