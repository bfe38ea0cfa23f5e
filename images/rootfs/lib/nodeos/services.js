'use strict';
// What the configuration asks to run: each user's npm packages, installed
// before the ready line, and the services, started then, restarted as their
// restart policy says, and stopped and started by the agent
// (agent-service-ops.js).

const fs = require('fs');
const phases = require('./phases');

const LOG_DIR = '/var/log/services';
const STOP_GRACE_MS = 5000;

// Packages listed in the configuration are part of coming up as specified;
// when there are any, their install time is a boot phase of its own. A
// failed install is recorded in result (the config result the host reads).
// Returns a promise then (npm runs while init's loop serves the agent and
// the tunnel, which npm's registry may be reached through), else undefined.
function installPackages({ out, config, result, account, childProcess, phase }) {
  const wanted = Object.values(config?.users ?? {}).some((u) => u.packages?.length);
  if (!wanted) return undefined;
  return installEachUsersPackages({ out, config, result, account, childProcess }).then(() => phase('packages'));
}

async function installEachUsersPackages({ out, config, result, account, childProcess }) {
  for (const [name, user] of Object.entries(config?.users ?? {})) {
    if (!user.packages?.length) continue;
    const as = account({ user: name });
    const started = phases.kernelClockMs();
    // A home keeps what was installed: a later boot asks the registry nothing.
    const missing = user.packages.filter((spec) => !installedInHome(as.home, spec));
    if (missing.length === 0) {
      out.log(`nodeos: packages ${name} ok 0ms (already in the home) ${user.packages.join(' ')}`);
      continue;
    }
    const run = await npmInstall(childProcess(), missing, as);
    if (run.ok) {
      out.log(`nodeos: packages ${name} ok ${(phases.kernelClockMs() - started).toFixed(0)}ms ${user.packages.join(' ')}`);
      continue;
    }
    result.applied = false;
    const detail = run.detail.trim().split('\n').slice(-3).join(' | ');
    result.errors.push(`users.${name}.packages: npm install failed: ${detail}`);
    out.error('packages', `${name}: npm install ${user.packages.join(' ')} failed: ${detail}`);
  }
}

// A bare package name (no version or tag) already under the home's global
// prefix (npm's prefix is the home: homes.js).
function installedInHome(home, spec) {
  const name = /^(@[a-z0-9._~-]+\/)?[a-z0-9._~-]+$/.test(spec) ? spec : null;
  return name !== null && fs.existsSync(`${home}/lib/node_modules/${name}/package.json`);
}

function npmInstall({ execFile }, packages, as) {
  return new Promise((resolve) => {
    const child = execFile('/bin/npm', ['install', '--global', ...packages], {
      env: as.env, cwd: as.home, uid: as.uid, gid: as.gid, timeout: 600_000, maxBuffer: 16 * 1024 * 1024,
    }, (e, stdout, stderr) => resolve(e ? { ok: false, detail: String(stderr || '') || e.message } : { ok: true }));
    child.stdin?.end();
  });
}

// Whether a service that exited is started again: a number of ms to wait,
// or 'crash-loop', or null. restarts holds the times of its recent restarts
// and is updated.
function restartDelay(service, status, restarts, now) {
  const failed = status !== 0;
  if (service.restart === 'never' || (service.restart === 'on-failure' && !failed)) return null;
  const recent = restarts.filter((t) => now - t < 60_000);
  restarts.length = 0;
  restarts.push(...recent);
  if (restarts.length >= 5) return 'crash-loop';
  restarts.push(now);
  return 200 * restarts.length;
}

// shuttingDown() says whether the machine is going down: no restarts then.
// Returns the services' controller: list(), and stop, start and restart by
// name (each resolves to the service's entry in list()).
// logDir and stopGraceMs are for tests.
function startServices({ out, config, account, childProcess, shuttingDown, logDir = LOG_DIR, stopGraceMs = STOP_GRACE_MS }) {
  const services = new Map(); // name -> state
  for (const service of config?.services ?? []) {
    services.set(service.name, {
      service, state: 'starting', child: null, timer: null, recent: [], restarts: 0, lastExit: null, exited: [],
    });
  }
  const spawnService = (s) => {
    s.timer = null;
    s.state = 'starting';
    const { spawn } = childProcess();
    const as = account({ user: s.service.user });
    fs.mkdirSync(logDir, { recursive: true });
    const logFile = fs.openSync(`${logDir}/${s.service.name}.log`, 'a');
    let child;
    try {
      child = spawn(s.service.argv[0], s.service.argv.slice(1), {
        cwd: s.service.cwd, env: { ...as.env, ...s.service.env }, uid: as.uid, gid: as.gid, detached: true, stdio: ['ignore', logFile, logFile],
      });
    } finally {
      fs.closeSync(logFile);
    }
    s.child = child;
    child.once('spawn', () => { if (s.child === child && s.state === 'starting') s.state = 'running'; });
    child.on('error', (e) => out.error(`service ${s.service.name}`, e.message));
    child.on('exit', (status, signal) => exited(s, child, status, signal));
  };
  const exited = (s, child, status, signal) => {
    if (s.child !== child) return;
    s.child = null;
    s.lastExit = { status, signal, atMs: Date.now() };
    for (const done of s.exited.splice(0)) done();
    if (s.state === 'stopped' || shuttingDown()) return;
    out.log(`nodeos: service ${s.service.name} exited (status ${status}, signal ${signal})`);
    const delay = restartDelay(s.service, status, s.recent, Date.now());
    if (delay === null) { s.state = 'exited'; return; }
    if (delay === 'crash-loop') {
      out.error(`service ${s.service.name}`, 'crash loop (5 restarts in 60 s), not restarted again');
      s.state = 'crash-loop';
      return;
    }
    s.state = 'starting';
    s.restarts++;
    s.timer = setTimeout(() => spawnService(s), delay);
  };
  const entry = (s) => ({
    name: s.service.name, user: s.service.user, state: s.state, pid: s.child?.pid ?? null, restarts: s.restarts, lastExit: s.lastExit,
  });
  const find = (name) => {
    const s = services.get(name);
    if (!s) throw Object.assign(new Error(`ENOENT: no service named ${JSON.stringify(name)} (known: ${[...services.keys()].join(', ') || 'none'})`), { code: 'ENOENT' });
    return s;
  };
  // SIGTERM to its process group, SIGKILL after the grace; resolves once it exited.
  const stop = async (name) => {
    const s = find(name);
    s.state = 'stopped';
    clearTimeout(s.timer);
    s.timer = null;
    const child = s.child;
    if (child) {
      const gone = new Promise((resolve) => s.exited.push(resolve));
      signalGroup(child.pid, 'SIGTERM');
      const kill = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), stopGraceMs);
      await gone;
      clearTimeout(kill);
    }
    return entry(s);
  };
  const start = async (name) => {
    const s = find(name);
    if (s.child || s.timer) return entry(s); // running, or about to be
    s.recent.length = 0; // a crash loop is forgotten
    spawnService(s);
    return entry(s);
  };
  for (const s of services.values()) spawnService(s);
  return {
    list: () => [...services.values()].map(entry),
    stop,
    start,
    async restart(name) { await stop(name); return start(name); },
  };
}

function signalGroup(pid, signal) {
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

module.exports = { installPackages, startServices, restartDelay, LOG_DIR };
