'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseCmdline, splitCmdline } = require('../rootfs/lib/nodeos/cmdline');

test('defaults when no nodeos parameter is given', () => {
  const { settings, errors } = parseCmdline('console=ttyS0 root=/dev/vda ro quiet');
  assert.deepEqual(errors, []);
  assert.equal(settings.hostname, 'nodeos');
  assert.equal(settings.shell, true);
  assert.equal(settings.testExit, false);
});

test('known parameters are parsed and typed', () => {
  const { settings, errors } = parseCmdline('nodeos.hostname=web-1 nodeos.shell=0 nodeos.net=10.0.2.20/24,10.0.2.2 nodeos.test.delay=init:300 nodeos.test.exit');
  assert.deepEqual(errors, []);
  assert.equal(settings.hostname, 'web-1');
  assert.equal(settings.shell, false);
  assert.deepEqual(settings.net, { address: '10.0.2.20', prefix: 24, gateway: '10.0.2.2' });
  assert.deepEqual(settings.testDelay, { phase: 'init', ms: 300 });
  assert.equal(settings.testExit, true);
});

test('garbage and unknown parameters are reported by name and ignored', () => {
  const { settings, errors } = parseCmdline('nodeos.hostname=-bad nodeos.shell=maybe nodeos.bogus=1 nodeos.test.delay=x');
  assert.equal(settings.hostname, 'nodeos');
  assert.equal(settings.shell, true);
  assert.equal(errors.length, 4);
  assert.match(errors[0], /^nodeos\.hostname=-bad: expected a host name/);
  assert.match(errors[1], /^nodeos\.shell=maybe: expected 0 or 1/);
  assert.match(errors[2], /^unknown parameter nodeos\.bogus/);
  assert.match(errors[3], /^nodeos\.test\.delay=x: expected PHASE:MS/);
});

test('quoted kernel parameters stay one word', () => {
  assert.deepEqual(splitCmdline('a "b c" d="e f"'), ['a', 'b c', 'd=e f']);
});
