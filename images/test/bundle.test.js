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

// Runs a staged /sbin/init as the kernel would: with its interpreter line's flag.
function boot(dir) {
  return spawnSync(process.execPath, ['--jitless', path.join(dir, 'sbin/init')], { encoding: 'utf8' });
}

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
  assert.equal(bundle([dir, process.execPath]).modules, 3);
  const init = fs.readFileSync(path.join(dir, 'sbin/init'), 'utf8');
  assert.equal(init.split('\n')[0], '#!/bin/node --jitless');
  assert.match(init, /^\/\/ why the flag$/m);
  assert.equal(fs.statSync(path.join(dir, 'sbin/init')).mode & 0o111, 0o111);
  assert.doesNotMatch(fs.readFileSync(path.join(dir, 'lib/nodeos/init-bundle.js'), 'utf8'), /console module/);
  const run = boot(dir);
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
  bundle([dir, process.execPath]);
  assert.equal(boot(dir).stdout, 'true\n');
});

test('init compiles from a code cache that holds every function, and without one still runs', (t) => {
  // Many small functions, as init has: a cache of only the outermost
  // function would leave their compilation to the first call of each. (V8
  // compiles no closure for a function nothing refers to: main uses them all.)
  const body = 's = (s * 31 + i) % 1000003; '.repeat(8);
  const helpers = Array.from({ length: 40 }, (_, i) => `function f${i}(x) { let s = ${i}; for (let i = 0; i < x; i++) { ${body}} return s; }`).join('\n');
  const all = `[${Array.from({ length: 40 }, (_, i) => `f${i}`)}].reduce((sum, f) => sum + f(4), 0)`;
  const ran = `ran ${new Function(`${helpers}\nreturn ${all};`)()}\n`;
  const dir = rootfs({
    'sbin/init': SBIN_INIT,
    'lib/nodeos/init.js': `${helpers}\nmodule.exports = { main() { console.log('ran ' + ${all}); } };\n`,
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { cacheBytes } = bundle([dir, process.execPath]);
  const bundleFile = path.join(dir, 'lib/nodeos/init-bundle.js');
  const cacheFile = path.join(dir, 'lib/nodeos/init-bundle.cache');
  assert.equal(fs.statSync(cacheFile).size, cacheBytes);
  const lazy = spawnSync(process.execPath, ['--jitless', '-p',
    `new (require('vm').Script)(require('fs').readFileSync(${JSON.stringify(bundleFile)}, 'utf8')).createCachedData().length`], { encoding: 'utf8' });
  assert.ok(cacheBytes > 3 * Number(lazy.stdout), `the cache (${cacheBytes} bytes) holds the inner functions: a lazy one is ${lazy.stdout.trim()} bytes`);

  assert.deepEqual([boot(dir).stdout, boot(dir).status], [ran, 0], 'the cache is accepted: no warning');
  // Other flags than the cache was made with: V8 refuses it, init compiles.
  const other = spawnSync(process.execPath, [path.join(dir, 'sbin/init')], { encoding: 'utf8' });
  assert.equal(other.stdout, `nodeos: warning init: V8 rejected the code cache; compiling from source\n${ran}`);
  fs.rmSync(cacheFile);
  assert.equal(boot(dir).stdout, `nodeos: warning init: no code cache (ENOENT); compiling from source\n${ran}`);
});

test('the startup snapshot holds the boot path and boots nothing outside PID 1', (t) => {
  const dir = rootfs({
    'sbin/init': SBIN_INIT,
    'lib/nodeos/init.js': "'use strict';\nconst side = require('./side');\n" +
      "module.exports = { main() { require('fs').writeFileSync(__dirname + '/../../booted', side.name); } };\n",
    'lib/nodeos/side.js': "module.exports = { name: 'side' };\n",
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { snapshotBytes } = bundle([dir, process.execPath]);
  const blob = path.join(dir, 'lib/nodeos/init.blob');
  assert.equal(fs.statSync(blob).size, snapshotBytes);
  // Started as the kernel starts init, NODE_OPTIONS naming the blob, but as
  // an ordinary process: it must not run init's main on this host.
  const run = spawnSync(process.execPath, ['--jitless', path.join(dir, 'sbin/init')], { encoding: 'utf8', env: { NODE_OPTIONS: `--snapshot-blob=${blob}` } });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, "init.blob: init's boot path is loaded (function); not PID 1, so not booting\n");
  assert.ok(!fs.existsSync(path.join(dir, 'booted')), "init's main did not run");
});

test('bad input names the file', (t) => {
  const extra = rootfs({ 'sbin/init': SBIN_INIT + 'console.log(1);\n', 'lib/nodeos/init.js': 'module.exports = { main() {} };\n' });
  const missing = rootfs({ 'sbin/init': SBIN_INIT, 'lib/nodeos/init.js': "require('./gone');\n" });
  const noNode = rootfs({ 'sbin/init': SBIN_INIT, 'lib/nodeos/init.js': 'module.exports = { main() {} };\n' });
  t.after(() => { for (const d of [extra, missing, noNode]) fs.rmSync(d, { recursive: true, force: true }); });
  assert.throws(() => bundle([extra, process.execPath]), new RegExp(`${extra}/sbin/init: expected only`));
  assert.throws(() => bundle([missing, process.execPath]), new RegExp(`${missing}/lib/nodeos/gone.js: ENOENT`));
  assert.throws(() => bundle([noNode]), new RegExp(`${noNode}/lib/nodeos/init-bundle.cache: making the code cache with ${noNode}/bin/node --jitless failed: .*ENOENT`));
  assert.throws(() => bundle([]), /usage/);
});

test("the image's own boot path bundles and leaves the console out", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-bundle-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(__dirname, '../rootfs'), dir, { recursive: true });
  bundle([dir, process.execPath]);
  const names = [...fs.readFileSync(path.join(dir, 'lib/nodeos/init-bundle.js'), 'utf8').matchAll(/^\/\/ --- \/lib\/nodeos\/([a-z0-9-]+)\.js$/gm)].map((m) => m[1]);
  for (const name of ['init', 'phases', 'cmdline', 'config', 'ext4', 'agent', 'agent-ops', 'protocol', 'seal']) assert.ok(names.includes(name), `${name} is bundled`);
  assert.ok(!names.includes('nsh') && !names.includes('shell'), 'the console stays out');
});
