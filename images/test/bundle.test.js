'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { main: bundle } = require('../bundle-init');

function rootfs(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-bundle-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const SBIN_INIT = "#!/bin/node --jitless\n// why the flag\nrequire('/lib/nodeos/init.js').main();\n";

test('the bundle runs init with every boot module evaluated once, cycles and all', (t) => {
  const dir = rootfs({
    'sbin/init': SBIN_INIT,
    'lib/nodeos/init.js': "'use strict';\nconst a = require('./a');\nconst b = require('./b');\n" +
      "function main() { console.log(JSON.stringify({ same: a.Err === b.Err, b: b.name, file: __filename })); }\n" +
      "function later() { return require('./nsh'); }\nmodule.exports = { main, later };\n",
    'lib/nodeos/a.js': "'use strict';\nclass Err extends Error {}\nmodule.exports = { Err };\nmodule.exports.b = require('./b');\n",
    'lib/nodeos/b.js': "'use strict';\nconst { Err } = require('./a');\nmodule.exports = { Err, name: require('path').basename('/x/b') };\n",
    'lib/nodeos/nsh.js': 'throw new Error("the console module must stay out of the bundle");\n',
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'init.bundle');
  assert.equal(bundle([dir, out]), 3);
  const text = fs.readFileSync(out, 'utf8');
  assert.equal(text.split('\n')[0], '#!/bin/node --jitless');
  assert.match(text, /^\/\/ why the flag$/m);
  assert.doesNotMatch(text, /console module/);
  assert.equal(fs.statSync(out).mode & 0o111, 0o111);
  const run = spawnSync(process.execPath, [out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  // b required a while a was still loading (the cycle) and got what a had
  // exported so far, as Node itself would give it.
  assert.deepEqual(JSON.parse(run.stdout), { same: true, b: 'b', file: '/lib/nodeos/init.js' });
});

test('the class of a module shared by two others keeps one identity', (t) => {
  const dir = rootfs({
    'sbin/init': SBIN_INIT,
    'lib/nodeos/init.js': "const x = require('./x'); const y = require('./y');\nmodule.exports = { main() { console.log(x.E === y.E && new x.E() instanceof y.E); } };\n",
    'lib/nodeos/x.js': "module.exports = { E: require('./shared').E };\n",
    'lib/nodeos/y.js': "module.exports = { E: require('./shared').E };\n",
    'lib/nodeos/shared.js': 'class E extends Error {}\nmodule.exports = { E };\n',
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  bundle([dir, path.join(dir, 'out')]);
  assert.equal(spawnSync(process.execPath, [path.join(dir, 'out')], { encoding: 'utf8' }).stdout, 'true\n');
});

test('bad input names the file', (t) => {
  const extra = rootfs({ 'sbin/init': SBIN_INIT + 'console.log(1);\n', 'lib/nodeos/init.js': 'module.exports = { main() {} };\n' });
  const missing = rootfs({ 'sbin/init': SBIN_INIT, 'lib/nodeos/init.js': "require('./gone');\n" });
  t.after(() => { fs.rmSync(extra, { recursive: true, force: true }); fs.rmSync(missing, { recursive: true, force: true }); });
  assert.throws(() => bundle([extra, path.join(extra, 'out')]), new RegExp(`${extra}/sbin/init: expected only`));
  assert.throws(() => bundle([missing, path.join(missing, 'out')]), new RegExp(`${missing}/lib/nodeos/gone.js: ENOENT`));
  assert.throws(() => bundle([]), /usage/);
});

test("the image's own boot path bundles and leaves the console out", (t) => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-bundle-')), 'init');
  t.after(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }));
  bundle([path.join(__dirname, '../rootfs'), out]);
  const names = [...fs.readFileSync(out, 'utf8').matchAll(/^\/\/ --- \/lib\/nodeos\/([a-z0-9-]+)\.js$/gm)].map((m) => m[1]);
  for (const name of ['init', 'phases', 'cmdline', 'config', 'ext4', 'agent', 'agent-ops', 'protocol']) assert.ok(names.includes(name), `${name} is bundled`);
  assert.ok(!names.includes('nsh') && !names.includes('shell'), 'the console stays out');
});
