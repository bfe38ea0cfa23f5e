'use strict';
// The pure parts of init's stages (images/rootfs/lib/nodeos): users and
// /etc, the home volume's ids, service restarts, and /proc/PID/stat.
const test = require('node:test');
const assert = require('node:assert');
const { addUser, volumeIds, etcFiles, account } = require('../rootfs/lib/nodeos/homes');
const { restartDelay } = require('../rootfs/lib/nodeos/services');
const { parseStat, isOrphanZombie, isOtherProcess } = require('../rootfs/lib/nodeos/processes');
const { defaultUid } = require('../rootfs/lib/nodeos/config');
const { hostsFile } = require('../rootfs/lib/nodeos/network');

test('addUser fills defaults and lets later defined fields win', () => {
  const users = new Map();
  addUser(users, 'root', { uid: 0, gid: 0 });
  addUser(users, 'alice', { uid: 1001, gid: undefined, password: null, shell: '/bin/nsh' });
  assert.deepEqual(users.get('root'), { name: 'root', home: '/root', password: null, shell: '/bin/nsh', uid: 0, gid: 0 });
  assert.deepEqual(users.get('alice'), { name: 'alice', home: '/home/alice', password: null, shell: '/bin/nsh', uid: 1001, gid: 1001 });
  addUser(users, 'alice', { uid: undefined, volume: '/dev/vdb', readOnly: false });
  assert.equal(users.get('alice').uid, 1001, 'an undefined uid keeps the earlier one');
  assert.equal(users.get('alice').volume, '/dev/vdb');
  addUser(users, 'bob', { volumeUnusable: true });
  assert.equal(users.get('bob').uid, defaultUid('bob'));
  assert.equal(users.get('bob').gid, defaultUid('bob'));
});

test("a home volume's owner wins over the configuration, except for root and a root-owned volume", () => {
  assert.deepEqual(volumeIds('alice', { uid: 1500, gid: 1600 }, { uid: 1001 }), { uid: 1500, gid: 1600, conflict: true });
  assert.deepEqual(volumeIds('alice', { uid: 1001, gid: 1001 }, { uid: 1001 }), { uid: 1001, gid: 1001, conflict: false });
  assert.deepEqual(volumeIds('alice', { uid: 0, gid: 0 }, { uid: 1001, gid: 50 }), { uid: 1001, gid: 50, conflict: false });
  assert.deepEqual(volumeIds('alice', { uid: 0, gid: 0 }, undefined), { uid: defaultUid('alice'), gid: defaultUid('alice'), conflict: false });
  assert.deepEqual(volumeIds('root', { uid: 0, gid: 0 }, { uid: 0 }), { uid: 0, gid: 0, conflict: false });
});

test('/etc is written from the users sorted by uid, the hostname and the registry', () => {
  const users = new Map();
  addUser(users, 'alice', { uid: 1000, password: '$6$x' });
  addUser(users, 'root', { uid: 0, gid: 0 });
  const files = Object.fromEntries(etcFiles({ users, hostname: 'box', registry: 'http://r/' }).map(([f, text, mode]) => [f, { text, mode }]));
  assert.equal(files['/etc/passwd'].text, 'root:x:0:0:root:/root:/bin/nsh\nalice:x:1000:1000:alice:/home/alice:/bin/nsh\n');
  assert.equal(files['/etc/group'].text, 'root:x:0:\nalice:x:1000:\n');
  assert.deepEqual(files['/etc/shadow'], { text: 'root:!\nalice:$6$x\n', mode: 0o600 });
  assert.equal(files['/etc/passwd'].mode, undefined);
  assert.equal(files['/etc/hostname'].text, 'box\n');
  assert.equal(files['/etc/hosts'], undefined, "the network stage's");
  assert.equal(hostsFile({ hostname: 'box', hosts: {} }), '127.0.0.1 localhost\n127.0.1.1 box\n');
  assert.equal(hostsFile({ hostname: 'web', hosts: { api: '192.168.50.3', web: '192.168.50.2' } }), '127.0.0.1 localhost\n192.168.50.3 api\n192.168.50.2 web\n',
    'the own name is its network address when hosts gives one');
  assert.match(files['/etc/npmrc'].text, /^registry=http:\/\/r\/\nprefix=\$\{HOME\}\n/);
  const plain = etcFiles({ users, hostname: 'box' }).find(([f]) => f === '/etc/npmrc')[1];
  assert.match(plain, /^prefix=/);
});

test('account: a user by name, a raw uid, or root', () => {
  const users = new Map();
  addUser(users, 'root', { uid: 0, gid: 0 });
  addUser(users, 'alice', { uid: 1000 });
  assert.deepEqual(account(users, {}), { uid: 0, gid: 0, home: '/root', env: { PATH: '/root/bin:/bin:/usr/bin', HOME: '/root', USER: 'root', LOGNAME: 'root', SHELL: '/bin/nsh' } });
  assert.equal(account(users, { user: 'alice' }).home, '/home/alice');
  assert.equal(account(users, { uid: 1000, gid: 5 }).gid, 5);
  assert.deepEqual(account(users, { uid: 4242 }), { uid: 4242, gid: 4242, home: '/', env: { PATH: '//bin:/bin:/usr/bin', HOME: '/', USER: '4242', LOGNAME: '4242', SHELL: '/bin/nsh' } });
  assert.throws(() => account(users, { user: 'mallory' }), (e) => e.code === 'EINVAL' && /no user "mallory"/.test(e.message));
});

test('a service restarts as its policy says, and five restarts in a minute are a crash loop', () => {
  assert.equal(restartDelay({ restart: 'never' }, 1, [], 0), null);
  assert.equal(restartDelay({ restart: 'on-failure' }, 0, [], 0), null);
  const restarts = [];
  assert.equal(restartDelay({ restart: 'on-failure' }, 1, restarts, 1000), 200);
  assert.equal(restartDelay({ restart: 'always' }, 0, restarts, 2000), 400);
  for (let t = 3000; t < 6000; t += 1000) restartDelay({ restart: 'always' }, 0, restarts, t);
  assert.equal(restarts.length, 5);
  assert.equal(restartDelay({ restart: 'always' }, 0, restarts, 7000), 'crash-loop');
  assert.equal(restartDelay({ restart: 'always' }, 0, restarts, 70_000), 200, 'restarts older than a minute are forgotten');
  assert.deepEqual(restarts, [70_000]);
});

test('/proc/PID/stat: orphaned zombies are reaped, kthreads and zombies do not count as processes', () => {
  const stat = parseStat('42 (a (weird) name) Z 1 42 42 0 -1');
  assert.deepEqual(stat, { state: 'Z', ppid: '1' });
  assert.ok(isOrphanZombie(stat));
  assert.ok(!isOrphanZombie(parseStat('43 (sh) Z 40 1')));
  assert.ok(!isOtherProcess('42', stat));
  assert.ok(isOtherProcess('44', parseStat('44 (node) S 1 44')));
  assert.ok(!isOtherProcess('45', parseStat('45 (kworker/0:1) I 2 0')));
  assert.ok(!isOtherProcess('2', parseStat('2 (kthreadd) S 0 0')));
});
