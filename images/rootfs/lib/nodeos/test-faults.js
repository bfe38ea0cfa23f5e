'use strict';
// Faults on request, for the testbed's reliability suite. Loaded only when
// the kernel command line says nodeos.test.faults=1, so a normal boot has no
// way to reach them. Each one breaks the guest the way real guests break:
// an agent that goes away, a PID 1 that stops answering, a channel flood,
// a kernel that warns, a console that drowns the host's reader.

const fs = require('fs');
const { RequestError, field } = require('./agent');

const KINDS = ['close-port', 'hang', 'flood', 'kmsg', 'console-flood'];
const MAX_KMSG_BYTES = 900;
const MAX_CONSOLE_FLOOD = 1024 * 1024 * 1024;
const CONSOLE_CHUNK = 64 * 1024;

// writeConsole(buffer, callback(err, written)) writes to init's console
// without blocking the event loop (init.js's, which also keeps the console's
// line state for init's own lines); writeKmsg(line) adds a kernel log record.
function makeFaultOps({ port, log, busyWait = spin, writeConsole = defaultWriteConsole, writeKmsg = defaultWriteKmsg }) {
  return {
    async testFault(message) {
      const kind = field.required(message, 'kind', 'string');
      const afterMs = field.optional(message, 'afterMs', 'integer', 0);
      if (!KINDS.includes(kind)) throw new RequestError('EINVAL', `kind: expected one of ${KINDS.join(', ')}`);
      if (afterMs < 0) throw new RequestError('EINVAL', 'afterMs: expected a non-negative integer');
      let run;
      if (kind === 'close-port') {
        run = () => { log('nodeos: test fault: the agent closes its port'); port.close(); };
      } else if (kind === 'hang') {
        const ms = field.required(message, 'ms', 'integer');
        if (ms <= 0) throw new RequestError('EINVAL', 'ms: expected a positive integer');
        run = () => { log(`nodeos: test fault: init stops answering for ${ms} ms`); busyWait(ms); };
      } else if (kind === 'flood') {
        const bytes = field.required(message, 'bytes', 'integer');
        if (bytes <= 0) throw new RequestError('EINVAL', 'bytes: expected a positive integer');
        run = () => { log(`nodeos: test fault: ${bytes} bytes on the agent channel without a line end`); flood(port, bytes); };
      } else if (kind === 'kmsg') {
        const level = field.required(message, 'level', 'integer');
        const text = field.required(message, 'text', 'string');
        if (level < 0 || level > 7) throw new RequestError('EINVAL', 'level: expected an integer from 0 to 7');
        if (/[\n\0]/.test(text)) throw new RequestError('EINVAL', 'text: expected no line end and no NUL');
        if (Buffer.byteLength(text) > MAX_KMSG_BYTES) throw new RequestError('EINVAL', `text: expected at most ${MAX_KMSG_BYTES} bytes (UTF-8)`);
        run = () => {
          log(`nodeos: test fault: a kernel log record at level ${level}`);
          try { writeKmsg(`<${level}>${text}\n`); } catch (e) { log(`nodeos: error test fault: kmsg: ${e.message}`); }
        };
      } else {
        const bytes = field.required(message, 'bytes', 'integer');
        const lineBytes = field.required(message, 'lineBytes', 'integer');
        if (bytes <= 0 || bytes > MAX_CONSOLE_FLOOD) throw new RequestError('EINVAL', `bytes: expected an integer from 1 to ${MAX_CONSOLE_FLOOD}`);
        if (lineBytes < 0) throw new RequestError('EINVAL', 'lineBytes: expected a non-negative integer (0: no line end at all)');
        run = () => {
          log(`nodeos: test fault: ${bytes} bytes on the console, ${lineBytes ? `lines of ${lineBytes} bytes` : 'without a line end'}`);
          consoleFlood(writeConsole, bytes, lineBytes, (err) => {
            if (err) log(`nodeos: error test fault: console flood: ${err.message}`);
            else log(`nodeos: test fault: console flood done ${bytes} bytes`);
          });
        };
      }
      // Answer first, then break: the host learns the fault was armed.
      setTimeout(run, afterMs);
      return { kind, afterMs };
    },
  };
}

// One shared 1 MiB buffer queued again and again: the flood costs the guest
// no memory, whatever its size.
function flood(port, bytes) {
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    port.send(n === chunk.length ? chunk : chunk.subarray(0, n));
    left -= n;
  }
  port.send(Buffer.from('\n'));
}

// The console flood's bytes, chunk by chunk: lines of lineBytes bytes, `x`
// and a final `\n` (lineBytes 0: all `x`). Where lines are shorter than a
// chunk, every chunk holds whole lines, so it is one buffer reused, and a
// line init logs between two chunks starts a line of its own.
function* floodChunks(bytes, lineBytes, chunkBytes = CONSOLE_CHUNK) {
  if (lineBytes > 0 && lineBytes <= chunkBytes) {
    const size = Math.floor(chunkBytes / lineBytes) * lineBytes;
    const chunk = Buffer.alloc(size, 'x');
    for (let end = lineBytes - 1; end < size; end += lineBytes) chunk[end] = 0x0a;
    for (let left = bytes; left > 0; left -= size) yield left >= size ? chunk : chunk.subarray(0, left);
    return;
  }
  const plain = Buffer.alloc(chunkBytes, 'x');
  for (let at = 0; at < bytes; at += chunkBytes) {
    const n = Math.min(chunkBytes, bytes - at);
    // Long lines: at most one line end falls in a chunk.
    const end = lineBytes > 0 ? lineBytes - 1 - (at % lineBytes) : -1;
    if (end < 0 || end >= n) { yield plain.subarray(0, n); continue; }
    const chunk = Buffer.alloc(n, 'x');
    chunk[end] = 0x0a;
    yield chunk;
  }
}

// One write in flight at a time, the next once it completed: init keeps
// answering the agent, and the flood's memory is one chunk.
function consoleFlood(writeConsole, bytes, lineBytes, done) {
  const chunks = floodChunks(bytes, lineBytes);
  const next = (chunk) => {
    if (!chunk) { done(null); return; }
    writeConsole(chunk, (err, written) => {
      if (err) { done(err); return; }
      next(written < chunk.length ? chunk.subarray(written) : chunks.next().value);
    });
  };
  next(chunks.next().value);
}

function defaultWriteConsole(buffer, callback) { fs.write(1, buffer, 0, buffer.length, null, callback); }

// A fresh open per record: the kernel rate-limits each opener of /dev/kmsg.
function defaultWriteKmsg(line) { fs.writeFileSync('/dev/kmsg', line); }

// A synchronous busy loop: the event loop, the agent and the console all stop.
function spin(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) { /* hung on purpose */ }
}

module.exports = { makeFaultOps, floodChunks, KINDS };
