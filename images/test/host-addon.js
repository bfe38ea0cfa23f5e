'use strict';
// Builds images/addon/nodeos.c for this host, as build-rootfs.sh builds it for
// the image, so the tests can call it: its pure functions (SHA-256, HMAC)
// anywhere, openAs where the tests run as root. null when this host has no
// C compiler or no Node-API headers: the tests that need it then skip.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const source = path.join(__dirname, '../addon/nodeos.c');

function headers() {
  const candidates = [
    path.join(path.dirname(process.execPath), '../include/node'),
    path.join(__dirname, '../../build/node/include/node'),
  ];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'node_api.h'))) ?? null;
}

let cached;
function loadHostAddon() {
  if (cached !== undefined) return cached;
  cached = null;
  const include = headers();
  if (!include) return cached;
  // One build per version of the source, shared by the test files' processes.
  const hash = require('crypto').createHash('sha256').update(fs.readFileSync(source)).update(include).digest('hex').slice(0, 16);
  const out = path.join(os.tmpdir(), `nodeos-addon-${hash}.node`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    const cc = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=nodeos', '-I', include, '-o', tmp, source], { encoding: 'utf8' });
    if (cc.error?.code === 'ENOENT') return cached;
    if (cc.status !== 0) throw new Error(`cc ${source} failed:\n${cc.stderr}`);
    fs.renameSync(tmp, out);
  }
  cached = require(out);
  return cached;
}

module.exports = { loadHostAddon };
