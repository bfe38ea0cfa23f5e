'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { validateConfig, parseConfigVolume, defaultUid } = require('../rootfs/lib/nodeos/config');

test('a full configuration validates and gets defaults', () => {
  const { config, errors } = validateConfig({
    hostname: 'builder',
    registry: 'http://10.0.2.2:4873/',
    users: { alice: { uid: 1000, packages: ['cowsay@1.5.0', '@scope/tool'] }, root: {} },
    services: [{ name: 'web', user: 'alice', argv: ['node', 'server.js'] }],
  });
  assert.deepEqual(errors, []);
  assert.equal(config.hostname, 'builder');
  assert.deepEqual(config.services[0], { name: 'web', user: 'alice', argv: ['node', 'server.js'], cwd: '/', env: {}, restart: 'on-failure' });
});

test('unknown keys are errors that name their path', () => {
  const { config, errors } = validateConfig({ hostnme: 'x', users: { bob: { uid: 1001, colour: 'red' } } });
  assert.equal(config, null);
  assert.deepEqual(errors, [
    'hostnme: unknown key (allowed: hostname, registry, users, services)',
    'users.bob.colour: unknown key (allowed: uid, gid, password, packages, shell)',
  ]);
});

test('wrong types and values name the key and what was expected', () => {
  const { errors } = validateConfig({
    hostname: 7,
    registry: 'ftp://x',
    users: { alice: { uid: 12, password: 'sha1:abc' }, bob: { uid: 1000 }, carol: { uid: 1000 } },
    services: [{ name: 'svc', argv: [] }, { name: 'svc', user: 'nobody', argv: ['x'], restart: 'sometimes' }],
  });
  const text = errors.join('\n');
  assert.match(text, /^hostname: expected a string, got a number$/m);
  assert.match(text, /^registry: expected an http\(s\) URL/m);
  assert.match(text, /^users\.alice\.uid: expected an integer 1000\.\.60000, got 12$/m);
  assert.match(text, /^users\.alice\.password: expected an scrypt hash/m);
  assert.match(text, /^users\.carol\.uid: uid 1000 is also given to bob$/m);
  assert.match(text, /^services\[0\]\.argv: must not be empty$/m);
  assert.match(text, /^services\[1\]\.name: duplicate service name svc$/m);
  assert.match(text, /^services\[1\]\.user: user nobody is not in users$/m);
  assert.match(text, /^services\[1\]\.restart: expected always, on-failure or never/m);
});

test('a config volume is NUL-padded JSON', () => {
  const bytes = Buffer.alloc(1024);
  bytes.write('{"hostname":"padded"}');
  assert.equal(parseConfigVolume(bytes).config.hostname, 'padded');
  assert.match(parseConfigVolume(Buffer.from('{"hostname":')).errors[0], /^\(volume\): not valid JSON/);
  assert.match(parseConfigVolume(Buffer.alloc(512)).errors[0], /^\(volume\): empty/);
  assert.match(parseConfigVolume(Buffer.from('[1]')).errors[0], /^\(root\): expected a JSON object, got an array/);
});

test('default uids are stable and in range', () => {
  assert.equal(defaultUid('root'), 0);
  assert.equal(defaultUid('alice'), defaultUid('alice'));
  assert.notEqual(defaultUid('alice'), defaultUid('bob'));
  for (const name of ['a', 'alice', 'zz_top', 'x'.repeat(32)]) {
    const uid = defaultUid(name);
    assert.ok(uid >= 1000 && uid < 60000, `${name} -> ${uid}`);
  }
});
