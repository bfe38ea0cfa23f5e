'use strict';
// The services' controller (services.js) and the agent's ops on it
// (agent-service-ops.js), with real child processes of this host.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { startServices } = require('../rootfs/lib/nodeos/services');
const { makeServiceOps, listensOn } = require('../rootfs/lib/nodeos/agent-service-ops');

const node = process.execPath;
const until = async (what, ok, ms = 8000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function start(services, options = {}) {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'services-'));
  const lines = [];
  const out = { log: (l) => lines.push(l), error: (step, m) => lines.push(`nodeos: error ${step}: ${m}`) };
  const account = () => ({ uid: process.getuid(), gid: process.getgid(), home: logDir, env: { PATH: process.env.PATH, HOME: logDir } });
  const config = { services: services.map((s) => ({ user: 'root', cwd: logDir, env: {}, restart: 'on-failure', ...s })) };
  const controller = startServices({ out, config, account, childProcess: () => require('child_process'), shuttingDown: () => false, logDir, ...options });
  const ops = makeServiceOps({ services: () => controller });
  return { controller, ops, lines, logDir, byName: (name) => controller.list().find((s) => s.name === name) };
}

test('services are listed with their state; stop, start and restart act on the process group; the log is per service', async (t) => {
  const m = start([
    { name: 'web', argv: [node, '-e', 'console.log("up"); console.error("err"); setInterval(() => {}, 1000)'] },
    { name: 'once', argv: [node, '-e', 'process.exit(0)'] },
  ]);
  t.after(() => m.controller.stop('web').catch(() => {}));
  await until('web running', () => m.byName('web').state === 'running');
  await until('once exited', () => m.byName('once').state === 'exited');
  const { services } = await m.ops.services({});
  const web = services.find((s) => s.name === 'web');
  assert.deepEqual({ ...web, pid: typeof web.pid }, { name: 'web', user: 'root', state: 'running', pid: 'number', restarts: 0, lastExit: null });
  assert.equal(m.byName('once').lastExit.status, 0);
  await until('the log', () => fs.readFileSync(path.join(m.logDir, 'web.log'), 'utf8') === 'up\nerr\n');

  const stopped = await m.ops.serviceStop({ name: 'web' });
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.pid, null);
  assert.equal(stopped.lastExit.signal, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(m.byName('web').state, 'stopped', 'not restarted');
  assert.ok(!m.lines.some((l) => l.includes('service web exited')), 'a stop is not an exit');

  const started = await m.ops.serviceStart({ name: 'web' });
  assert.ok(started.pid > 0);
  await until('web running again', () => m.byName('web').state === 'running');
  const before = m.byName('web').pid;
  const restarted = await m.ops.serviceRestart({ name: 'web' });
  assert.notEqual(restarted.pid, before);
  await assert.rejects(m.ops.serviceStop({ name: 'nope' }), { code: 'ENOENT', message: /no service named "nope"/ });
  await assert.rejects(m.ops.serviceStart({}), { code: 'EINVAL', message: 'name: is required' });
});

test('a service that ignores SIGTERM is killed after the grace', async () => {
  const m = start([{ name: 'stubborn', argv: [node, '-e', 'process.on("SIGTERM", () => {}); console.log("ready"); setInterval(() => {}, 1000)'] }], { stopGraceMs: 300 });
  await until('ready', () => fs.existsSync(path.join(m.logDir, 'stubborn.log')) && fs.readFileSync(path.join(m.logDir, 'stubborn.log'), 'utf8').includes('ready'));
  const stopped = await m.controller.stop('stubborn');
  assert.equal(stopped.lastExit.signal, 'SIGKILL');
});

test('a crash loop is detected, sealed as an error line, and cleared by serviceStart', async () => {
  const m = start([{ name: 'crash', argv: [node, '-e', 'process.exit(3)'] }]);
  await until('crash-loop', () => m.byName('crash').state === 'crash-loop', 10_000);
  assert.equal(m.byName('crash').restarts, 5);
  assert.deepEqual(m.byName('crash').lastExit.status, 3);
  assert.ok(m.lines.includes('nodeos: error service crash: crash loop (5 restarts in 60 s), not restarted again'));
  await m.ops.serviceStart({ name: 'crash' });
  assert.notEqual(m.byName('crash').state, 'crash-loop');
  await until('crash-loop again', () => m.byName('crash').state === 'crash-loop', 10_000);
});

test('listening reads /proc/net/tcp and tcp6 for a LISTEN socket on the port', async (t) => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0',
  ].join('\n');
  assert.equal(listensOn(table, 8080), true);
  assert.equal(listensOn(table, 80), false, 'an established socket does not count');
  const server = net.createServer().listen(0, '0.0.0.0');
  await once(server, 'listening');
  t.after(() => server.close());
  const { ops } = { ops: makeServiceOps({ services: () => null }) };
  assert.deepEqual(await ops.listening({ port: server.address().port }), { listening: true });
  const port = server.address().port;
  await new Promise((r) => server.close(r));
  assert.deepEqual(await ops.listening({ port }), { listening: false });
  await assert.rejects(ops.listening({ port: 0 }), { code: 'EINVAL' });
  assert.deepEqual(await ops.services({}), { services: [] });
  await assert.rejects(ops.serviceStop({ name: 'x' }), { code: 'EAGAIN' });
});
