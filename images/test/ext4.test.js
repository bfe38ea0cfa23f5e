'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { inspectSuperblock } = require('../rootfs/lib/nodeos/ext4');

// Real volumes made by mkfs.ext4 and damaged by debugfs, as on the host.
function volume(setup) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ext4-test-'));
  const file = path.join(dir, 'v.ext4');
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'home-t', file, '8M']);
    if (setup) setup(file);
    return fs.readFileSync(file).subarray(0, 4096);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('a fresh ext4 volume is clean and labelled', () => {
  assert.deepEqual(inspectSuperblock(volume()), { ext4: true, hasErrors: false, needsRecovery: false, label: 'home-t' });
});

test('recorded errors are seen', () => {
  const info = inspectSuperblock(volume((f) => execFileSync('debugfs', ['-w', '-R', 'ssv state 3', f], { stdio: 'ignore' })));
  assert.equal(info.hasErrors, true);
});

test('anything else is not ext4, with a reason', () => {
  assert.match(inspectSuperblock(Buffer.alloc(4096)).reason, /no ext4 superblock \(magic 0x0000/);
  assert.match(inspectSuperblock(Buffer.alloc(100)).reason, /only 100 bytes/);
});
