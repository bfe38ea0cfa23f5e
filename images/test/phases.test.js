'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { formatPhase, parsePhaseLine, handoverFromKmsg, PHASE_LINE } = require('../rootfs/lib/nodeos/phases');
const { prefixToMask } = require('../rootfs/lib/nodeos/network');

test('phase lines round-trip', () => {
  const line = formatPhase('homes', 530.1014);
  assert.equal(line, 'nodeos: phase homes 530.101ms');
  assert.deepEqual(parsePhaseLine(line), { name: 'homes', ms: 530.101 });
  const ready = formatPhase('ready', 541, 'boot=abc');
  assert.equal(ready, 'nodeos: ready 541.000ms boot=abc');
  assert.ok(ready.startsWith('nodeos: ready'));
  assert.deepEqual(parsePhaseLine(ready), { name: 'ready', ms: 541 });
  assert.equal(parsePhaseLine('nodeos: error homes: x'), null);
  assert.ok(PHASE_LINE.test('nodeos: phase kernel 1.000ms'));
  assert.throws(() => formatPhase('Bad Name', 1));
});

test('the handover time comes from the kernel log record', () => {
  const records = ['6,1,100,-;Linux version 6.1', '6,312,301220,-;Run /sbin/init as init process\n'];
  assert.equal(handoverFromKmsg(records), 301.22);
  assert.equal(handoverFromKmsg(['6,1,100,-;nothing here']), null);
});

test('when the kernel tried more than one init, the last one started is the handover', () => {
  const records = ['6,311,300000,-;Run /sbin/init as init process', '3,312,300500,-;Starting init: /sbin/init exists but couldn\'t execute it (error -8)',
    '6,313,301000,-;Run /etc/init as init process', '7,314,900000,-;nodeos-clock-1-x'];
  assert.equal(handoverFromKmsg(records), 301);
});

test('prefix lengths become netmasks', () => {
  assert.equal(prefixToMask(24), '255.255.255.0');
  assert.equal(prefixToMask(8), '255.0.0.0');
  assert.equal(prefixToMask(0), '0.0.0.0');
  assert.equal(prefixToMask(32), '255.255.255.255');
  assert.equal(prefixToMask(20), '255.255.240.0');
});
