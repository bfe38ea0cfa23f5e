'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseCmdline } = require('../rootfs/lib/nodeos/cmdline');
const { makeFaultOps, floodChunks } = require('../rootfs/lib/nodeos/test-faults');

function fakePort() {
  const port = { closed: false, sent: 0, chunks: 0, lastByte: null };
  port.send = (chunk) => { port.sent += chunk.length; port.chunks++; port.lastByte = chunk[chunk.length - 1]; };
  port.close = () => { port.closed = true; };
  return port;
}
const settle = (ms = 5) => new Promise((r) => setTimeout(r, ms));

test('test faults are off unless the command line turns them on', () => {
  assert.equal(parseCmdline('console=ttyS0').settings.testFaults, false);
  assert.equal(parseCmdline('nodeos.test.faults=1').settings.testFaults, true);
  assert.match(parseCmdline('nodeos.test.faults=please').errors[0], /^nodeos\.test\.faults=please: expected 0 or 1/);
});

test('close-port answers first, then closes the port', async () => {
  const port = fakePort();
  const { testFault } = makeFaultOps({ port, log: () => {} });
  assert.deepEqual(await testFault({ kind: 'close-port' }), { kind: 'close-port', afterMs: 0 });
  assert.equal(port.closed, false);
  await settle();
  assert.equal(port.closed, true);
});

test('flood sends exactly the bytes asked for, then one line end, without a buffer per MiB', async () => {
  const port = fakePort();
  const { testFault } = makeFaultOps({ port, log: () => {} });
  await testFault({ kind: 'flood', bytes: 3 * 1024 * 1024 + 5 });
  await settle();
  assert.equal(port.sent, 3 * 1024 * 1024 + 5 + 1);
  assert.equal(port.chunks, 5);
  assert.equal(port.lastByte, 0x0a);
});

test('hang busy-waits for the time asked', async () => {
  let waited = null;
  const { testFault } = makeFaultOps({ port: fakePort(), log: () => {}, busyWait: (ms) => { waited = ms; } });
  await testFault({ kind: 'hang', ms: 1500 });
  await settle();
  assert.equal(waited, 1500);
});

test('bad fault requests name the field', async () => {
  const { testFault } = makeFaultOps({ port: fakePort(), log: () => {} });
  await assert.rejects(testFault({ kind: 'explode' }), /^Error: kind: expected one of close-port, hang, flood, kmsg, console-flood$/);
  await assert.rejects(testFault({ kind: 'flood' }), /bytes: is required/);
  await assert.rejects(testFault({ kind: 'hang', ms: 0 }), /ms: expected a positive integer/);
  await assert.rejects(testFault({ kind: 'hang', ms: 5, afterMs: -1 }), /afterMs: expected a non-negative integer/);
  await assert.rejects(testFault({ kind: 'hang', ms: 'long' }), /ms: expected an integer/);
});

test('kmsg writes one kernel log record at the level asked, after the answer', async () => {
  const records = [];
  const lines = [];
  const { testFault } = makeFaultOps({ port: fakePort(), log: (l) => lines.push(l), writeKmsg: (r) => records.push(r) });
  assert.deepEqual(await testFault({ kind: 'kmsg', level: 4, text: 'WARNING: CPU: 0 PID: 1 at test' }), { kind: 'kmsg', afterMs: 0 });
  assert.deepEqual(records, []);
  await settle();
  assert.deepEqual(records, ['<4>WARNING: CPU: 0 PID: 1 at test\n']);
  assert.deepEqual(lines, ['nodeos: test fault: a kernel log record at level 4']);
});

test('kmsg requests are checked field by field', async () => {
  const { testFault } = makeFaultOps({ port: fakePort(), log: () => {}, writeKmsg: () => {} });
  await assert.rejects(testFault({ kind: 'kmsg', text: 'x' }), /^Error: level: is required$/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 8, text: 'x' }), /^Error: level: expected an integer from 0 to 7$/);
  await assert.rejects(testFault({ kind: 'kmsg', level: -1, text: 'x' }), /level: expected an integer from 0 to 7/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 1.5, text: 'x' }), /level: expected an integer/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 3 }), /^Error: text: is required$/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 3, text: 'two\nlines' }), /^Error: text: expected no line end and no NUL$/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 3, text: 'y'.repeat(901) }), /^Error: text: expected at most 900 bytes \(UTF-8\)$/);
  await assert.rejects(testFault({ kind: 'kmsg', level: 3, text: 'ä'.repeat(451) }), /text: expected at most 900 bytes/);
  assert.equal((await testFault({ kind: 'kmsg', level: 0, text: 'y'.repeat(900) })).kind, 'kmsg');
  await settle();
});

test('a kmsg write that fails is said on the console', async () => {
  const lines = [];
  const { testFault } = makeFaultOps({ port: fakePort(), log: (l) => lines.push(l), writeKmsg: () => { throw new Error('EACCES: permission denied'); } });
  await testFault({ kind: 'kmsg', level: 2, text: 'x' });
  await settle();
  assert.equal(lines.at(-1), 'nodeos: error test fault: kmsg: EACCES: permission denied');
});

// A console that completes each write later, as libuv's pool does, and
// sometimes only in part.
function fakeConsole({ partial = false } = {}) {
  const c = { bytes: [], inFlight: 0, maxInFlight: 0, writes: 0 };
  c.write = (buffer, callback) => {
    c.inFlight++; c.writes++;
    c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
    const n = partial && buffer.length > 1 ? Math.ceil(buffer.length / 2) : buffer.length;
    c.bytes.push(Buffer.from(buffer.subarray(0, n)));
    setImmediate(() => { c.inFlight--; callback(null, n); });
  };
  c.text = () => Buffer.concat(c.bytes).toString('latin1');
  return c;
}

test('console-flood writes exactly the bytes asked, in lines of lineBytes, one write at a time, then says it is done', async () => {
  for (const [bytes, lineBytes] of [[200_000, 80], [100, 1], [70_000, 0], [300_000, 100_000], [65_536 * 2, 65_536], [10, 3]]) {
    const out = fakeConsole();
    const lines = [];
    const { testFault } = makeFaultOps({ port: fakePort(), log: (l) => lines.push(l), writeConsole: out.write });
    assert.deepEqual(await testFault({ kind: 'console-flood', bytes, lineBytes }), { kind: 'console-flood', afterMs: 0 });
    while (lines.length < 2) await settle(1);
    assert.equal(lines[1], `nodeos: test fault: console flood done ${bytes} bytes`);
    assert.equal(out.maxInFlight, 1, 'the next chunk only after the last write completed');
    const text = out.text();
    assert.equal(text.length, bytes);
    if (lineBytes === 0) { assert.ok(!text.includes('\n')); continue; }
    const expected = Array.from({ length: bytes }, (_, i) => ((i + 1) % lineBytes === 0 ? '\n' : 'x')).join('');
    assert.ok(text === expected, `bytes=${bytes} lineBytes=${lineBytes}`);
  }
});

test('console-flood carries on after a partial write and keeps the event loop free', async () => {
  const out = fakeConsole({ partial: true });
  const lines = [];
  const { testFault } = makeFaultOps({ port: fakePort(), log: (l) => lines.push(l), writeConsole: out.write });
  await testFault({ kind: 'console-flood', bytes: 1000, lineBytes: 10 });
  let ticks = 0;
  // A turn is one setImmediate, as each fake write completes in one: a timer
  // could let every write finish within a single tick on a loaded host.
  while (lines.length < 2) { ticks++; await new Promise((resolve) => setImmediate(resolve)); }
  assert.equal(out.text(), ('x'.repeat(9) + '\n').repeat(100));
  assert.ok(ticks > 1, 'the flood ran across turns of the event loop');
});

test('every chunk of a flood of short lines ends at a line end, and the buffer is shared', () => {
  const chunks = [...floodChunks(1_000_000, 80, 65_536)];
  assert.ok(chunks.every((c) => c[c.length - 1] === 0x0a));
  assert.equal(chunks[0].length, Math.floor(65_536 / 80) * 80);
  assert.equal(new Set(chunks.slice(0, -1)).size, 1);
  assert.equal(chunks.reduce((n, c) => n + c.length, 0), 1_000_000);
});

test('console-flood requests are checked field by field, and a failed write is said', async () => {
  const lines = [];
  const { testFault } = makeFaultOps({ port: fakePort(), log: (l) => lines.push(l), writeConsole: (b, cb) => setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }))) });
  await assert.rejects(testFault({ kind: 'console-flood', lineBytes: 80 }), /^Error: bytes: is required$/);
  await assert.rejects(testFault({ kind: 'console-flood', bytes: 10 }), /^Error: lineBytes: is required$/);
  await assert.rejects(testFault({ kind: 'console-flood', bytes: 0, lineBytes: 80 }), /^Error: bytes: expected an integer from 1 to 1073741824$/);
  await assert.rejects(testFault({ kind: 'console-flood', bytes: 2 ** 31, lineBytes: 80 }), /bytes: expected an integer from 1/);
  await assert.rejects(testFault({ kind: 'console-flood', bytes: 10, lineBytes: -1 }), /^Error: lineBytes: expected a non-negative integer/);
  await assert.rejects(testFault({ kind: 'console-flood', bytes: 10, lineBytes: '80' }), /lineBytes: expected an integer/);
  await testFault({ kind: 'console-flood', bytes: 10, lineBytes: 0 });
  while (lines.length < 2) await settle(1);
  assert.equal(lines[1], 'nodeos: error test fault: console flood: EIO: i/o error, write');
});
