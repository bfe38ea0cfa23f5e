'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { makeOps, fileOpener, ownership } = require('../rootfs/lib/nodeos/agent-ops');
const { loadHostAddon } = require('./host-addon');

const users = new Map([
  ['root', { name: 'root', uid: 0, gid: 0, home: '/root' }],
  ['alice', { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice' }],
  ['bob', { name: 'bob', uid: 1001, gid: 1001, home: '/home/bob' }],
]);

test('a file in a home is opened as its owner; a named user wins; elsewhere root opens it as before', () => {
  assert.equal(fileOpener('/home/alice/notes.txt', undefined, users).user.name, 'alice');
  assert.equal(fileOpener('/home/alice', undefined, users).user.name, 'alice');
  assert.equal(fileOpener('/root/.profile', undefined, users).user.name, 'root');
  assert.equal(fileOpener('/home/alicex/notes.txt', undefined, users).user, null, 'a prefix of a name is not the home');
  assert.equal(fileOpener('/etc/passwd', undefined, users).user, null);
  assert.equal(fileOpener('/etc/passwd', 'bob', users).user.name, 'bob');
  assert.equal(fileOpener('/home/alice/x', 'bob', users).user.name, 'bob');
  // Resolved before the owner is decided.
  assert.deepEqual(fileOpener('/tmp/../home/alice/./x', undefined, users), { path: '/home/alice/x', user: users.get('alice') });
  assert.deepEqual(fileOpener('/home/alice/../../etc/shadow', undefined, users), { path: '/etc/shadow', user: null });
  assert.equal(fileOpener('home/bob/x', undefined, users).path, '/home/bob/x', 'relative to /, init\'s directory');
  assert.throws(() => fileOpener('/x', 'mallory', users), { code: 'EINVAL', message: 'user: no user "mallory" on this machine' });
});

test('a user\'s write chowns only to their own ids, root\'s as asked', () => {
  const alice = users.get('alice');
  const root = users.get('root');
  assert.equal(ownership({}, alice, true), null);
  assert.deepEqual(ownership({ uid: 5, gid: 6 }, root, true), { uid: 5, gid: 6 });
  assert.deepEqual(ownership({ gid: 6 }, root, true), { uid: -1, gid: 6 });
  assert.deepEqual(ownership({ uid: 1000, gid: 1000 }, alice, true), { uid: -1, gid: 1000 });
  assert.deepEqual(ownership({ uid: 1000 }, alice, true), { uid: -1, gid: -1 });
  assert.equal(ownership({ uid: 0 }, alice, true), null, 'never to someone else');
  assert.equal(ownership({ uid: 1000, gid: 0 }, alice, true), null);
  assert.equal(ownership({ uid: 1000 }, alice, false), null, 'a file of someone else\'s keeps its owner');
});

const addon = loadHostAddon();
const skip = !addon ? 'no C compiler or Node-API headers on this host' : process.getuid() !== 0 ? 'needs root (file-system ids)' : false;

function machine(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-ops-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.chmodSync(root, 0o755);
  const home = path.join(root, 'home/alice');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  fs.chmodSync(path.join(root, 'home'), 0o755);
  fs.chownSync(home, 1000, 1000);
  fs.writeFileSync(path.join(root, 'shadow'), 'root:secret\n', { mode: 0o600 });
  const users = new Map([
    ['root', { name: 'root', uid: 0, gid: 0, home: path.join(root, 'root') }],
    ['alice', { name: 'alice', uid: 1000, gid: 1000, home }],
  ]);
  return { root, home, ops: makeOps({ addon, users }) };
}

const b64 = (s) => Buffer.from(s).toString('base64');

test('readFile of a user\'s symbolic link to a root file fails with ELOOP instead of reading it', { skip }, async (t) => {
  const { root, home, ops } = machine(t);
  fs.symlinkSync(path.join(root, 'shadow'), path.join(home, 'notes.txt'));
  await assert.rejects(ops.readFile({ path: path.join(home, 'notes.txt') }), (e) => {
    assert.equal(e.code, 'ELOOP');
    assert.equal(e.message, `ELOOP: a symbolic link is in the path (none is followed for a user), open '${home}/notes.txt' as alice`);
    return true;
  });
  fs.symlinkSync(root, path.join(home, 'up'));
  await assert.rejects(ops.readFile({ path: path.join(home, 'up/shadow') }), { code: 'ELOOP' });
  // Root named in the request walks without links too; root by default,
  // outside any home, follows them as it always did.
  await assert.rejects(ops.readFile({ path: path.join(home, 'notes.txt'), user: 'root' }), { code: 'ELOOP' });
  const asRoot = await ops.readFile({ path: path.join(root, 'shadow') });
  assert.equal(Buffer.from(asRoot.data, 'base64').toString(), 'root:secret\n');
  // A user named in the request reads as that user anywhere.
  await assert.rejects(ops.readFile({ path: path.join(root, 'shadow'), user: 'alice' }), { code: 'EACCES', message: `EACCES: permission denied, open '${root}/shadow' as alice` });
});

test('readFile in a home reads the owner\'s file and reports its stat', { skip }, async (t) => {
  const { home, ops } = machine(t);
  fs.writeFileSync(path.join(home, 'a.txt'), 'hello', { mode: 0o640 });
  fs.chownSync(path.join(home, 'a.txt'), 1000, 1000);
  fs.chmodSync(path.join(home, 'a.txt'), 0o640);
  assert.deepEqual(await ops.readFile({ path: path.join(home, 'a.txt') }), { data: b64('hello'), size: 5, mode: 0o640, uid: 1000, gid: 1000 });
  await assert.rejects(ops.readFile({ path: path.join(home, 'missing') }), { code: 'ENOENT' });
  await assert.rejects(ops.readFile({ path: home }), { code: 'EISDIR' });
});

test('writeFile in a home creates the file as its owner and never writes through a link', { skip }, async (t) => {
  const { root, home, ops } = machine(t);
  assert.deepEqual(await ops.writeFile({ path: path.join(home, 'new.txt'), data: b64('data'), mode: 0o600 }), { size: 4 });
  let st = fs.statSync(path.join(home, 'new.txt'));
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o600]);
  // Existing file: truncated, mode set (it is alice's), chown to her own ids allowed.
  await ops.writeFile({ path: path.join(home, 'new.txt'), data: b64('xy'), mode: 0o644, uid: 1000, gid: 1000 });
  st = fs.statSync(path.join(home, 'new.txt'));
  assert.deepEqual([fs.readFileSync(path.join(home, 'new.txt'), 'utf8'), st.mode & 0o7777, st.uid], ['xy', 0o644, 1000]);
  // chown to someone else is not hers to do: left as it is.
  await ops.writeFile({ path: path.join(home, 'new.txt'), data: b64('z'), uid: 0, gid: 0 });
  st = fs.statSync(path.join(home, 'new.txt'));
  assert.deepEqual([st.uid, st.gid], [1000, 1000]);

  fs.symlinkSync(path.join(root, 'shadow'), path.join(home, 'evil'));
  await assert.rejects(ops.writeFile({ path: path.join(home, 'evil'), data: b64('pwned') }), { code: 'ELOOP' });
  assert.equal(fs.readFileSync(path.join(root, 'shadow'), 'utf8'), 'root:secret\n');
  assert.equal(fs.statSync(path.join(root, 'shadow')).mode & 0o7777, 0o600);

  // A file of root's in her home that she cannot write.
  fs.writeFileSync(path.join(home, 'roots'), 'r', { mode: 0o644 });
  await assert.rejects(ops.writeFile({ path: path.join(home, 'roots'), data: b64('w') }), { code: 'EACCES' });
  // One she may write keeps its mode and owner.
  fs.writeFileSync(path.join(home, 'shared'), 's');
  fs.chmodSync(path.join(home, 'shared'), 0o666);
  await ops.writeFile({ path: path.join(home, 'shared'), data: b64('t'), mode: 0o600 });
  st = fs.statSync(path.join(home, 'shared'));
  assert.deepEqual([fs.readFileSync(path.join(home, 'shared'), 'utf8'), st.mode & 0o7777, st.uid], ['t', 0o666, 0]);
});

test('writeFile as root outside the homes chowns as asked; bad modes are refused', { skip }, async (t) => {
  const { root, ops } = machine(t);
  const file = path.join(root, 'etc-file');
  await ops.writeFile({ path: file, data: b64('cfg'), mode: 0o640, uid: 1000, gid: 1001 });
  const st = fs.statSync(file);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1001, 0o640]);
  await assert.rejects(ops.writeFile({ path: file, data: b64('x'), mode: 0o10000 }), { code: 'EINVAL', message: /^mode: / });
  await assert.rejects(ops.writeFile({ path: file, data: b64('x'), user: 'nobody' }), { code: 'EINVAL', message: /^user: no user/ });
});
