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
    'hostnme: unknown key (allowed: hostname, registry, users, services, tunnel, networks, hosts)',
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

test('tunnel listeners, networks and hosts validate, and get defaults', () => {
  const { config, errors } = validateConfig({
    tunnel: { listen: [{ name: 'registry', port: 4873 }] },
    networks: [{ mac: '52:54:00:AB:cd:01', address: '192.168.50.2', prefix: 24 }],
    hosts: { api: '192.168.50.3', 'web.lan': '192.168.50.2' },
  });
  assert.deepEqual(errors, []);
  assert.deepEqual(config.tunnel, { listen: [{ name: 'registry', port: 4873 }] });
  assert.deepEqual(config.networks, [{ mac: '52:54:00:ab:cd:01', address: '192.168.50.2', prefix: 24 }], 'the MAC in lowercase, as /sys/class/net has it');
  assert.deepEqual(config.hosts, { api: '192.168.50.3', 'web.lan': '192.168.50.2' });
  const empty = validateConfig({}).config;
  assert.deepEqual([empty.tunnel, empty.networks, empty.hosts], [{ listen: [] }, [], {}]);
});

test('bad tunnel listeners, networks and hosts name the key and what was expected', () => {
  const { errors } = validateConfig({
    tunnel: { listen: [{ name: 'registry', port: 4873 }, { name: 'Reg', port: 0 }, { name: 'registry', port: 4873, x: 1 }], other: 1 },
    networks: [{ mac: '52:54:00:00:00:01', address: '10.0.0.1', prefix: 24 }, { mac: '52-54', address: '10.0.0.256', prefix: 33 }, { mac: '52:54:00:00:00:01', address: '10.0.0.1' }],
    hosts: { api: '1.2.3', '-x': '10.0.0.1' },
  });
  assert.deepEqual(errors, [
    'tunnel.other: unknown key (allowed: listen)',
    'tunnel.listen[1].name: expected a listener name ([a-z0-9-]+), got "Reg"',
    'tunnel.listen[1].port: expected an integer 1..65535, got 0',
    'tunnel.listen[2].x: unknown key (allowed: name, port)',
    'tunnel.listen[2].name: duplicate listener name registry',
    "tunnel.listen[2].port: port 4873 is also another listener's",
    'networks[1].mac: expected a MAC address like 52:54:00:12:34:56, got "52-54"',
    'networks[1].address: expected an IPv4 address like 192.168.50.2, got "10.0.0.256"',
    'networks[1].prefix: expected an integer 1..32, got 33',
    'networks[2].mac: duplicate MAC 52:54:00:00:00:01',
    'networks[2].address: duplicate address 10.0.0.1',
    'networks[2].prefix: is required',
    'hosts.api: expected an IPv4 address like 192.168.50.3, got "1.2.3"',
    'hosts.-x: a host name must be labels of [A-Za-z0-9-] separated by dots',
  ]);
  assert.deepEqual(validateConfig({ tunnel: [], networks: {}, hosts: [] }).errors, [
    'tunnel: expected an object, got an array', 'networks: expected an array, got an object', 'hosts: expected an object, got an array',
  ]);
});
