'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseCmdline } = require('../rootfs/lib/nodeos/cmdline');
const { makeFaultOps } = require('../rootfs/lib/nodeos/test-faults');

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
  await assert.rejects(testFault({ kind: 'explode' }), /^Error: kind: expected one of close-port, hang, flood$/);
  await assert.rejects(testFault({ kind: 'flood' }), /bytes: is required/);
  await assert.rejects(testFault({ kind: 'hang', ms: 0 }), /ms: expected a positive integer/);
  await assert.rejects(testFault({ kind: 'hang', ms: 5, afterMs: -1 }), /afterMs: expected a non-negative integer/);
  await assert.rejects(testFault({ kind: 'hang', ms: 'long' }), /ms: expected an integer/);
});
