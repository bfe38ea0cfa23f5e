'use strict';
// What the configuration asks to run: each user's npm packages, installed
// before the ready line, and the services, started then and restarted as
// their restart policy says.

const fs = require('fs');
const phases = require('./phases');

// Packages listed in the configuration are part of coming up as specified;
// when there are any, their install time is a boot phase of its own. A
// failed install is recorded in result (the config result the host reads).
function installPackages({ out, config, result, account, childProcess, phase }) {
  const wanted = Object.values(config?.users ?? {}).some((u) => u.packages?.length);
  if (!wanted) return;
  installEachUsersPackages({ out, config, result, account, childProcess });
  phase('packages');
}

function installEachUsersPackages({ out, config, result, account, childProcess }) {
  for (const [name, user] of Object.entries(config?.users ?? {})) {
    if (!user.packages?.length) continue;
    const { execFileSync } = childProcess();
    const as = account({ user: name });
    const started = phases.kernelClockMs();
    try {
      execFileSync('/bin/npm', ['install', '--global', ...user.packages], {
        env: as.env, cwd: as.home, uid: as.uid, gid: as.gid, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000,
      });
      out.log(`nodeos: packages ${name} ok ${(phases.kernelClockMs() - started).toFixed(0)}ms ${user.packages.join(' ')}`);
    } catch (e) {
      result.applied = false;
      const detail = (e.stderr?.toString() || e.message).trim().split('\n').slice(-3).join(' | ');
      result.errors.push(`users.${name}.packages: npm install failed: ${detail}`);
      out.error('packages', `${name}: npm install ${user.packages.join(' ')} failed: ${detail}`);
    }
  }
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
function startServices({ out, config, account, childProcess, shuttingDown }) {
  const services = new Map(); // name -> { restarts, child, stopped }
  const startService = (service) => {
    const { spawn } = childProcess();
    const as = account({ user: service.user });
    const state = services.get(service.name) ?? { restarts: [], child: null, stopped: false };
    services.set(service.name, state);
    const logFile = fs.openSync(`/var/log/${service.name}.log`, 'a');
    const child = spawn(service.argv[0], service.argv.slice(1), {
      cwd: service.cwd, env: { ...as.env, ...service.env }, uid: as.uid, gid: as.gid, detached: true, stdio: ['ignore', logFile, logFile],
    });
    fs.closeSync(logFile);
    state.child = child;
    child.on('error', (e) => out.error(`service ${service.name}`, e.message));
    child.on('exit', (status, signal) => {
      state.child = null;
      if (shuttingDown() || state.stopped) return;
      out.log(`nodeos: service ${service.name} exited (status ${status}, signal ${signal})`);
      const delay = restartDelay(service, status, state.restarts, Date.now());
      if (delay === null) return;
      if (delay === 'crash-loop') {
        out.error(`service ${service.name}`, 'crash loop (5 restarts in 60 s), not restarted again');
        state.stopped = true;
        return;
      }
      setTimeout(() => startService(service), delay);
    });
  };
  for (const service of config?.services ?? []) startService(service);
}

module.exports = { installPackages, startServices, restartDelay };
