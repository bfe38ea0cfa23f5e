'use strict';
// The tunnel's framing (images/PROTOCOL.md, "Tunnel"): a 9-byte header
// (type u8, connection id u32 BE, payload length u32 BE) and the payload.
// The decoder never holds more than one frame.

const TYPES = { HELLO: 1, OPEN: 2, OPENED: 3, REFUSED: 4, DATA: 5, ACK: 6, END: 7, CLOSE: 8 };
const HEADER = 9;
const MAX_PAYLOAD = 65536;

function encodeFrame(type, id, payload = Buffer.alloc(0)) {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const frame = Buffer.allocUnsafe(HEADER + body.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt32BE(id, 1);
  frame.writeUInt32BE(body.length, 5);
  body.copy(frame, HEADER);
  return frame;
}

class FrameDecoder {
  constructor() {
    this.parts = [];
    this.length = 0;
    // After a protocol error the stream is out of step: bytes are skipped
    // up to the next HELLO header (type 1, id 0), as a new host sends first.
    this.resyncing = false;
  }

  // Returns an array of { type, id, payload } and, last, { error } when the
  // bytes broke the framing (the rest of the chunk is then skipped up to a HELLO).
  push(chunk) {
    const frames = [];
    if (chunk.length) { this.parts.push(chunk); this.length += chunk.length; }
    let buffer = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    let start = 0;
    for (;;) {
      if (this.resyncing) {
        const at = findHello(buffer, start);
        if (at < 0) { start = Math.max(start, buffer.length - HEADER + 1); break; }
        start = at;
        this.resyncing = false;
      }
      if (buffer.length - start < HEADER) break;
      const type = buffer.readUInt8(start);
      const id = buffer.readUInt32BE(start + 1);
      const length = buffer.readUInt32BE(start + 5);
      if (length > MAX_PAYLOAD) {
        frames.push({ error: `frame of type ${type} for connection ${id} has a payload of ${length} bytes (at most ${MAX_PAYLOAD})` });
        this.resyncing = true;
        start += 1;
        continue;
      }
      if (buffer.length - start < HEADER + length) break;
      frames.push({ type, id, payload: Buffer.from(buffer.subarray(start + HEADER, start + HEADER + length)) });
      start += HEADER + length;
    }
    buffer = buffer.subarray(start);
    this.parts = buffer.length ? [buffer] : [];
    this.length = buffer.length;
    return frames;
  }

  reset() { this.parts = []; this.length = 0; this.resyncing = false; }
  resync() { this.resyncing = true; }
}

function findHello(buffer, from) {
  for (let i = buffer.indexOf(TYPES.HELLO, from); i >= 0 && i + HEADER <= buffer.length; i = buffer.indexOf(TYPES.HELLO, i + 1)) {
    if (buffer.readUInt32BE(i + 1) === 0 && buffer.readUInt32BE(i + 5) <= MAX_PAYLOAD) return i;
  }
  return -1;
}

module.exports = { TYPES, HEADER, MAX_PAYLOAD, encodeFrame, FrameDecoder };
