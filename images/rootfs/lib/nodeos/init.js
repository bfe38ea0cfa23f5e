'use strict';
// PID 1. Boots the machine in named steps, each of which may fail without
// stopping the others: a JavaScript error here is logged on the console, a
// rescue shell is offered, and the agent stays up. The kernel never panics
// because of init, except when asked to through nodeos.test.exit.
//
// This file is the boot sequence; each stage is a module of its own, and
// what the stages share lives in main's variables, written where main says.

const fs = require('fs');
const phases = require('./phases');
const { parseCmdline } = require('./cmdline');
const { createConsole, startSealing, startConsoleShell } = require('./console');
const { mountAll, readText } = require('./mounts');
const { loadConfig, writeConfigResult } = require('./config-volume');
const { mountHomes, account } = require('./homes');
const { configureNetwork } = require('./network');
const { createProcesses } = require('./processes');
const { installPackages, startServices } = require('./services');
const { createShutdown, sleepSync } = require('./shutdown');
const { openAgent } = require('./agent-port');
const { openTunnel } = require('./tunnel-port');

function step(out, name, fn) {
  try {
    return fn();
  } catch (e) {
    out.error(name, e.stack || e.message);
    return undefined;
  }
}

// startedFrom: 'snapshot' when node started from /lib/nodeos/init.blob,
// 'script' when it ran /sbin/init (images/bundle-init.js has both).
function main({ startedFrom = 'script' } = {}) {
  const initStart = phases.kernelClockMs();
  const out = createConsole();
  let stop = null; // shutdown, once the addon is loaded
  process.on('uncaughtException', (e) => out.error('init', `uncaught exception: ${e.stack || e}`));
  process.on('unhandledRejection', (e) => out.error('init', `unhandled rejection: ${e?.stack || e}`));
  process.on('SIGINT', () => {}); // Ctrl-C at the console is for the foreground command
  process.on('SIGTERM', () => stop?.shutdown('poweroff', 'SIGTERM'));
  process.on('SIGUSR2', () => stop?.shutdown('restart', 'SIGUSR2'));
  process.title = 'init';

  // libuv's pool has 4 threads by default, and init pins some in blocking
  // reads for good (the agent's port, the tunnel's, the kernel log) or for a while (a
  // write to a port no host reads); the rest serve the agent's file ops.
  // Read once, at the pool's first use: before that, in the agent's stage.
  process.env.UV_THREADPOOL_SIZE ??= '8';

  // What the stages share. main writes each; the stage named beside it fills it in.
  let settings = null; // the kernel command line's nodeos.* settings
  let bootId = '';
  let config = null; // the configuration volume's, when it had no errors
  let configResult = { applied: false, errors: [], source: 'none' }; // packages add their failures
  let hostname = null; // set once sethostname succeeded (currentHostname)
  const users = new Map(); // name -> { uid, gid, home, volume }: homes fills it
  const homes = []; // mounted home paths, unmounted at shutdown: homes fills it
  let agent = null;
  let services = null; // the services' controller, once they started
  let tunnel = null;
  const phaseTimes = {};

  // The name init set; loading 'os' just to read it back costs ~10 ms under TCG.
  const currentHostname = () => hostname ?? require('os').hostname();
  const accountOf = (message) => account(users, message);
  const hello = () => ({
    protocol: 1,
    nodeVersion: process.version,
    kernel: readText('/proc/sys/kernel/osrelease'),
    bootId,
    hostname: currentHostname(),
    phases: phaseTimes,
    config: configResult,
    startedFrom,
  });
  const phase = (name, ms = phases.kernelClockMs()) => {
    const delay = settings?.testDelay;
    if (delay && delay.phase === name) { sleepSync(delay.ms); ms = phases.kernelClockMs(); }
    phaseTimes[name] = Number(ms.toFixed(3));
    out.log(phases.formatPhase(name, ms, name === 'ready' ? `boot=${bootId}` : ''));
  };

  const addon = require('./nodeos.node');
  const processes = createProcesses({ addon });
  stop = createShutdown({ out, addon, homes: () => homes, agent: () => agent });
  try { addon.setsid(); } catch { /* already a session leader */ }
  // Its error waits until sealing is decided: every line after that is sealed.
  let mountError = null;
  try { mountAll(addon); } catch (e) { mountError = e; }
  const ok = fs.existsSync('/proc/self');
  let cmdlineText = '';
  try { cmdlineText = fs.readFileSync('/proc/cmdline', 'utf8'); } catch { /* no /proc: defaults */ }
  const cmdline = parseCmdline(cmdlineText);
  settings = cmdline.settings;
  bootId = readText('/proc/sys/kernel/random/boot_id') ?? '';
  step(out, 'seal', () => {
    const keyHex = settings.seal;
    // From here on the key lives only in the sealer: not in hello, not in settings.
    settings.seal = null;
    startSealing({ out, addon, keyHex, bootId, cmdlineText });
  });
  if (mountError) out.error('mounts', mountError.stack || mountError.message);
  const kmsg = step(out, 'kmsg', () => readKmsg(addon)) ?? { records: [], offsetMs: 0 };
  const handover = phases.handoverFromKmsg(kmsg.records);
  const kernelMs = handover === null ? 0 : handover + kmsg.offsetMs;
  if (handover !== null) phase('kernel', kernelMs);
  // The process cannot start before the kernel hands over; when the two
  // clocks' conversion says otherwise (seen under TCG), trust the order.
  // process.uptime() counts from node's own start; perf_hooks would say the
  // same but costs ~100 ms to load under TCG.
  phase('node', Math.max(initStart - process.uptime() * 1000, kernelMs));
  phase('init', initStart);
  for (const e of cmdline.errors) out.error('cmdline', e);
  if (settings.testExit) { out.log('nodeos: init exits on purpose (nodeos.test.exit)'); process.exit(1); }
  if (!ok) out.error('mounts', 'the basic file systems are missing; carrying on');
  phase('mounts');

  step(out, 'config', () => ({ config, result: configResult } = loadConfig({ out, serial: settings.config })));
  const wantedHostname = config?.hostname ?? settings.hostname;
  if (step(out, 'hostname', () => { addon.sethostname(wantedHostname); return true; })) hostname = wantedHostname;
  phase('config');
  step(out, 'homes', () => mountHomes({ out, addon, config, users, mounted: homes, hostname: currentHostname }));
  phase('homes');
  step(out, 'network', () => configureNetwork({ out, addon, net: settings.net, networks: config?.networks, hosts: config?.hosts, hostname: currentHostname() }));
  phase('network');
  if (settings.agent) {
    step(out, 'agent', () => {
      const machine = { addon, users, account: accountOf, hello, childProcess: processes.childProcess, shutdown: stop.shutdown, services: () => services };
      const opened = openAgent({ out, machine, testFaults: settings.testFaults, bootId });
      if (!opened) return;
      agent = opened.agent;
      opened.listen();
    });
  }
  phase('agent');
  // The tunnel's listeners serve what comes next (npm's registry may be
  // one); without any, the tunnel waits until after the ready line.
  const listeners = config?.tunnel?.listen ?? [];
  if (listeners.length) step(out, 'tunnel', () => { tunnel = openTunnel({ out, listeners }); });
  const { childProcess } = processes;
  // A promise when there are packages: npm runs while the loop serves the
  // agent and the tunnel; the rest of the boot follows it.
  const installing = step(out, 'packages', () => installPackages({ out, config, result: configResult, account: accountOf, childProcess, phase }));
  if (installing) installing.catch((e) => out.error('packages', e.stack || e.message)).then(comeUp);
  else comeUp();

  function comeUp() {
    step(out, 'services', () => { services = startServices({ out, config, account: accountOf, childProcess, shuttingDown: stop.shuttingDown }); });
    step(out, 'config-result', () => writeConfigResult({ bootId, result: configResult }));
    phase('ready');

    // Lazy work, after the ready line.
    setImmediate(() => {
      // The pool exists by now if the agent does (it reads through it); children need not see this.
      delete process.env.UV_THREADPOOL_SIZE;
      step(out, 'child-process', childProcess);
      if (settings.shell) step(out, 'console', () => startConsoleShell({ out, addon, childProcess, rootEnv: () => accountOf({}).env }));
      if (agent) step(out, 'kernel-log', () => startKernelLog({ out, addon, agent }));
      if (!listeners.length) step(out, 'tunnel', () => { tunnel = openTunnel({ out, listeners: [] }); });
    });
    process.on('SIGCHLD', () => setImmediate(processes.reapOrphans));
    setInterval(processes.reapOrphans, 5000).unref();
  }
}

// Returns the kernel log records plus the offset that turns their clock
// (local_clock) into CLOCK_MONOTONIC, which every other phase uses: the two
// drift apart by tens of milliseconds under TCG. A marker record written at a
// known monotonic time gives the offset.
function readKmsg(addon) {
  const marker = `nodeos-clock-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const writtenAt = phases.kernelClockMs();
  try { fs.writeFileSync('/dev/kmsg', `<7>${marker}\n`); } catch { /* no offset then */ }
  const records = addon.readKmsg();
  const markerRecord = records.find((r) => r.includes(marker));
  const markerMs = markerRecord ? Number(markerRecord.split(',')[2]) / 1000 : null;
  return { records, offsetMs: markerMs === null ? 0 : writtenAt - markerMs };
}

// Warnings and worse from the kernel log, as agent events (kernel-log.js).
function startKernelLog({ out, addon, agent }) {
  require('./kernel-log').startKernelLog({
    addon,
    send: (name, fields) => agent.event(name, fields),
    onError: (e) => out.error('kernel-log', `read /dev/kmsg: ${e.message}`),
  });
}

module.exports = { main };
