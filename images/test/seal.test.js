'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { createSealer, openSealed, hideSealKey, keyFromHex } = require('../rootfs/lib/nodeos/seal');
const { parseCmdline } = require('../rootfs/lib/nodeos/cmdline');

const hmacHex = (key, data) => crypto.createHmac('sha256', key).update(data).digest('hex');
const keyHex = '00112233445566778899aabbccddeeff';
const key = Buffer.from(keyHex, 'hex');
const bootId = '3f0c2a8e-6b1d-4c55-9a0e-1f2d3c4b5a69';

test('sealed lines carry SEQ and the first 16 hex digits of HMAC-SHA256(key, "BOOTID SEQ LINE")', () => {
  const seal = createSealer({ key, bootId, hmacHex });
  const first = seal(`nodeos: boot ${bootId}`);
  const expected = hmacHex(key, `${bootId} 1 nodeos: boot ${bootId}`).slice(0, 16);
  assert.equal(first, `nodeos: boot ${bootId} ~1.${expected}`);
  const second = seal('nodeos: phase kernel 301.220ms');
  assert.match(second, /^nodeos: phase kernel 301\.220ms ~2\.[0-9a-f]{16}$/);
  assert.deepEqual(openSealed(second, { key, bootId, hmacHex }), { seq: 2, line: 'nodeos: phase kernel 301.220ms' });
});

test('the example in PROTOCOL.md holds', () => {
  const doc = require('fs').readFileSync(require('path').join(__dirname, '../PROTOCOL.md'), 'utf8');
  const example = /^nodeos: boot 3f0c.*$\n^nodeos: phase kernel.*$\n^…$\n^nodeos: ready.*$/m.exec(doc)[0].split('\n');
  assert.equal(/nodeos\.seal=([0-9a-f]+)` *\nand boot id `([0-9a-f-]+)`/.exec(doc)?.[1], keyHex);
  const seal = createSealer({ key, bootId, hmacHex });
  assert.equal(seal(`nodeos: boot ${bootId}`), example[0]);
  assert.equal(seal('nodeos: phase kernel 301.220ms'), example[1]);
  for (let i = 3; i < 10; i++) seal(`nodeos: line ${i}`);
  assert.equal(seal(`nodeos: ready 541.002ms boot=${bootId}`), example[3]);
});

test('a line that is not sealed, sealed with another key or boot, or altered, does not open', () => {
  const seal = createSealer({ key, bootId, hmacHex });
  const line = seal('nodeos: ready 541.002ms boot=x');
  const opts = { key, bootId, hmacHex };
  assert.equal(openSealed('nodeos: ready 1.000ms', opts), null);
  assert.equal(openSealed(line.replace('541', '542'), opts), null);
  assert.equal(openSealed(line.replace(' ~1.', ' ~2.'), opts), null, 'the sequence number is part of the MAC');
  assert.equal(openSealed(line, { ...opts, bootId: 'other' }), null, 'a line from another boot');
  assert.equal(openSealed(line, { ...opts, key: Buffer.alloc(16) }), null);
  assert.deepEqual(openSealed(line, opts), { seq: 1, line: 'nodeos: ready 541.002ms boot=x' });
});

test('only the first line of a multi-line message is sealed', () => {
  const seal = createSealer({ key, bootId, hmacHex });
  const out = seal('nodeos: error init: boom\n    at x\nnodeos: ready 1.000ms');
  const lines = out.split('\n');
  assert.equal(lines.length, 3);
  assert.deepEqual(openSealed(lines[0], { key, bootId, hmacHex }), { seq: 1, line: 'nodeos: error init: boom' });
  assert.equal(lines[2], 'nodeos: ready 1.000ms', 'what follows the first line stays unsealed: the host ignores it');
});

test('the key is strict hex of 16 to 64 bytes, and never echoed', () => {
  assert.equal(parseCmdline('quiet').settings.seal, null);
  assert.equal(parseCmdline(`nodeos.seal=${keyHex}`).settings.seal, keyHex);
  assert.equal(parseCmdline(`nodeos.seal=${'AB'.repeat(64)}`).settings.seal, 'AB'.repeat(64));
  for (const bad of ['abc', 'zz'.repeat(16), '0'.repeat(31), '0'.repeat(33), '0'.repeat(130), '']) {
    const { settings, errors } = parseCmdline(`nodeos.seal=${bad}`);
    assert.equal(settings.seal, null, bad);
    assert.equal(errors.length, 1);
    assert.equal(errors[0], `nodeos.seal=(${bad.length} characters, not shown): expected 32 to 128 hex digits, an even number`);
  }
  // A malformed key anywhere is no key, even beside a good one.
  assert.equal(parseCmdline(`nodeos.seal=${keyHex} nodeos.seal=xyz`).settings.seal, null);
  assert.equal(parseCmdline(`nodeos.seal=xyz nodeos.seal=${keyHex}`).settings.seal, null);
});

test('the command line users see names no key', () => {
  const cmdline = `console=ttyS0 quiet nodeos.seal=${keyHex} nodeos.hostname=a\n`;
  assert.equal(hideSealKey(cmdline, keyHex), 'console=ttyS0 quiet nodeos.seal=hidden nodeos.hostname=a\n');
  assert.equal(hideSealKey(`a "nodeos.seal=${keyHex}" x=${keyHex.toUpperCase()}`, keyHex), 'a "nodeos.seal=hidden" x=hidden');
  assert.equal(hideSealKey('nodeos.seal=junk quiet', null), 'nodeos.seal=hidden quiet');
  assert.equal(hideSealKey('a nodeos.seal= b xnodeos.seal=other', null), 'a nodeos.seal=hidden b xnodeos.seal=other', 'only whole parameters');
});

test('the key\'s bytes come from its hex', () => {
  assert.deepEqual(keyFromHex(keyHex), key);
  assert.deepEqual(keyFromHex('00fF10aB'), Buffer.from([0, 255, 16, 171]));
});
