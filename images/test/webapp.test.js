'use strict';
// The @nodeos/webapp fixture (scenarios/packages) on this host: installed
// as npm would lay it out, started as its bin with PORT, every route checked.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');

const packages = path.resolve(__dirname, '../../scenarios/packages');
// The tree npm installs for @nodeos/webapp@1.0.0: its dependency and theirs.
const TREE = { '@nodeos/webapp': '1.0.0', '@nodeos/greeting': '1.0.0', '@nodeos/strings': '1.2.0', '@nodeos/locale': '1.0.0', '@nodeos/util': '1.1.0' };

function install() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webapp-'));
  for (const [name, version] of Object.entries(TREE)) {
    const target = path.join(dir, 'node_modules', name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.cpSync(path.join(packages, name, version), target, { recursive: true });
  }
  return dir;
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function get(port, pathname, options = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`, options);
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

test('webapp answers each of its routes', async (t) => {
  const dir = install();
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(dir, 'node_modules/@nodeos/webapp/bin/webapp.js')], { env: { PORT: String(port), PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { child.kill(); fs.rmSync(dir, { recursive: true, force: true }); });
  const [first] = await once(child.stdout, 'data');
  assert.match(first.toString(), new RegExp(`listening on 0\\.0\\.0\\.0:${port}`));

  const root = await get(port, '/');
  assert.equal(root.status, 200);
  assert.match(root.type, /^text\/plain/);
  assert.equal(root.body.toString(), `hello from webapp 1.0.0 on ${os.hostname()}\n`);

  const health = await get(port, '/health');
  assert.equal(health.status, 200);
  const h = JSON.parse(health.body);
  assert.deepEqual(Object.keys(h), ['ok', 'pid', 'uptimeMs']);
  assert.equal(h.ok, true);
  assert.equal(h.pid, child.pid);
  assert.ok(Number.isInteger(h.uptimeMs) && h.uptimeMs >= 0);

  const bytes = await get(port, '/bytes?n=1000000');
  assert.equal(bytes.status, 200);
  assert.equal(bytes.type, 'application/octet-stream');
  assert.equal(bytes.body.length, 1000000);
  assert.equal((await get(port, '/bytes?n=0')).body.length, 0);
  assert.equal((await get(port, `/bytes?n=${64 * 1024 * 1024 + 1}`)).status, 400);

  const echo = await get(port, '/echo', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  assert.deepEqual([echo.status, echo.type, echo.body.toString()], [200, 'application/json', '{"a":1}']);

  const proxied = await get(port, `/proxy?url=${encodeURIComponent(`http://localhost:${port}/health`)}`);
  assert.equal(proxied.status, 200);
  assert.equal(JSON.parse(proxied.body).pid, child.pid);
  const missing = await get(port, `/proxy?url=${encodeURIComponent(`http://127.0.0.1:${port}/nope`)}`);
  assert.equal(missing.status, 404, "the upstream's status comes back");
  const dead = await freePort();
  const failed = await get(port, `/proxy?url=${encodeURIComponent(`http://127.0.0.1:${dead}/`)}`);
  assert.equal(failed.status, 502);
  assert.match(failed.body.toString(), /ECONNREFUSED/);
  const unknownHost = await get(port, `/proxy?url=${encodeURIComponent('http://no-such-host.invalid/')}`);
  assert.equal(unknownHost.status, 502);
  assert.match(unknownHost.body.toString(), /ENOTFOUND|EAI_AGAIN/);
  assert.equal((await get(port, '/proxy?url=nope')).status, 400);

  assert.equal((await get(port, '/elsewhere')).status, 404);
  assert.equal((await get(port, '/', { method: 'POST' })).status, 404);
});
