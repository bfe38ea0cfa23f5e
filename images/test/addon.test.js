'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { loadHostAddon } = require('./host-addon');

const addon = loadHostAddon();
const skip = addon ? false : 'no C compiler or Node-API headers on this host';
const asRoot = skip || (process.getuid() === 0 ? false : 'openAs changes file-system ids: run as root');

test('SHA-256 gives the FIPS 180-2 digests', { skip }, () => {
  assert.equal(addon.sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(addon.sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  assert.equal(addon.sha256Hex(Buffer.alloc(1_000_000, 'a')), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
  assert.equal(addon.sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('HMAC-SHA256 gives the RFC 4231 MACs', { skip }, () => {
  const aa = Buffer.alloc(131, 0xaa);
  const cases = [
    [Buffer.alloc(20, 0x0b), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    ['Jefe', 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    [Buffer.from(Array.from({ length: 25 }, (_, i) => i + 1)), Buffer.alloc(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    [aa, 'Test Using Larger Than Block-Size Key - Hash Key First', '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [aa, 'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2'],
  ];
  for (const [key, data, mac] of cases) assert.equal(addon.hmacSha256Hex(key, data), mac);
  // Test case 5 is about truncation: its MAC's first 128 bits.
  assert.equal(addon.hmacSha256Hex(Buffer.alloc(20, 0x0c), 'Test With Truncation').slice(0, 32), 'a3b6167473100ee06e0c796c2955552b');
});

test('HMAC-SHA256 agrees with node\'s crypto at every length around the block size, in UTF-8', { skip }, () => {
  const crypto = require('crypto');
  for (let n = 0; n < 200; n += 7) {
    const key = crypto.randomBytes(n % 100);
    const data = 'ä'.repeat(n) + 'x'.repeat(n % 3);
    assert.equal(addon.hmacSha256Hex(key, data), crypto.createHmac('sha256', key).update(data).digest('hex'), `n=${n}`);
  }
  assert.throws(() => addon.hmacSha256Hex(1, 'x'), /hmacSha256Hex\(key/);
});

test('openAs opens as the user and follows no symbolic link anywhere', { skip: asRoot }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-openas-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  const home = path.join(dir, 'alice');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.chownSync(home, 1000, 1000);
  fs.writeFileSync(path.join(dir, 'shadow'), 'root only\n', { mode: 0o600 });
  fs.writeFileSync(path.join(home, 'notes.txt'), 'mine\n');
  fs.symlinkSync(path.join(dir, 'shadow'), path.join(home, 'link'));
  fs.symlinkSync(dir, path.join(home, 'up'));
  fs.mkdirSync(path.join(home, 'sub'));
  require('child_process').execFileSync('mkfifo', [path.join(home, 'fifo')]);
  const read = (file, uid = 1000, gid = 1000) => {
    const fd = addon.openAs(file, fs.constants.O_RDONLY, 0, uid, gid);
    try { return fs.readFileSync(fd, 'utf8'); } finally { fs.closeSync(fd); }
  };
  assert.equal(read(path.join(home, 'notes.txt')), 'mine\n');
  assert.equal(read(`${home}//./notes.txt`), 'mine\n');
  assert.throws(() => read(path.join(home, 'link')), { code: 'ELOOP', message: new RegExp(`openAs\\(${home}/link\\) failed: .*\\(ELOOP\\)`) });
  assert.throws(() => read(path.join(home, 'up/shadow')), { code: 'ELOOP' }, 'a link to a directory in the middle of the path');
  assert.throws(() => read(path.join(dir, 'shadow')), { code: 'EACCES' }, 'as alice, not as root');
  assert.equal(read(path.join(dir, 'shadow'), 0, 0), 'root only\n');
  assert.throws(() => read(path.join(home, 'gone')), { code: 'ENOENT' });
  assert.throws(() => read(path.join(home, 'sub')), { code: 'EISDIR' });
  assert.throws(() => read(path.join(home, 'fifo')), { code: 'EINVAL', message: /not a regular file/ }, 'a FIFO would block init');
  assert.throws(() => addon.openAs('relative', 0, 0, 0, 0), /absolute path/);

  const created = path.join(home, 'new.txt');
  const fd = addon.openAs(created, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o640, 1000, 1000);
  fs.writeSync(fd, 'hello');
  fs.closeSync(fd);
  const st = fs.statSync(created);
  assert.deepEqual([st.uid, st.gid, st.size], [1000, 1000, 5], 'created with the user\'s ids');
  assert.throws(() => addon.openAs(path.join(home, 'link'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644, 1000, 1000), { code: 'ELOOP' });
  assert.equal(fs.readFileSync(path.join(dir, 'shadow'), 'utf8'), 'root only\n', 'the link\'s target is untouched');
  // The ids in force before come back, after success and failure alike.
  assert.match(fs.readFileSync('/proc/self/status', 'utf8'), /^Uid:\t0\t0\t0\t0$/m);
  assert.match(fs.readFileSync('/proc/self/status', 'utf8'), /^Gid:\t0\t0\t0\t0$/m);
});
