'use strict';
// PID 1. Boots the machine in named steps, each of which may fail without
// stopping the others: a JavaScript error here is logged on the console, a
// rescue shell is offered, and the agent stays up. The kernel never panics
// because of init, except when asked to through nodeos.test.exit.

const fs = require('fs');
const path = require('path');
const phases = require('./phases');
const { parseCmdline } = require('./cmdline');
const { parseConfigVolume, defaultUid } = require('./config');
const { inspectSuperblock } = require('./ext4');
const { createSealer, hideSealKey, keyFromHex } = require('./seal');

const RUN = '/run/nodeos';
const system = {
  addon: null,
  settings: null,
  config: null,
  configResult: { applied: false, errors: [], source: 'none' },
  phases: {},
  bootId: '',
  hostname: null, // set once sethostname succeeded (currentHostname)
  startedFrom: null, // 'snapshot' or 'script': how node started init (main's argument)
  users: new Map(), // name -> { uid, gid, home, volume }
  homes: [], // mounted home paths, unmounted at shutdown
  spawned: new Set(), // pids that libuv owns; the reaper must not touch them
  services: new Map(),
  agent: null,
  shuttingDown: false,
};

// With nodeos.seal, init's own machine-readable lines carry a MAC (seal.js);
// seal stays null without it, and the console reads as it always did.
let seal = null;
// Whether init's last bytes on the console ended mid-line (a console flood
// without line ends): its next line then starts on a line of its own.
let consoleMidLine = false;

function log(line) {
  if (seal && line.startsWith('nodeos: ')) line = seal(line);
  const text = (consoleMidLine ? '\n' : '') + line + '\n';
  consoleMidLine = false;
  try { fs.writeSync(1, text); } catch { /* console gone */ }
}

// Writes to the console in libuv's pool, for output too long to block on.
function writeConsole(buffer, callback) {
  consoleMidLine = buffer.length > 0 && buffer[buffer.length - 1] !== 0x0a;
  fs.write(1, buffer, 0, buffer.length, null, callback);
}
function error(step, message) { log(`nodeos: error ${step}: ${message}`); }
function warning(step, message) { log(`nodeos: warning ${step}: ${message}`); }

function sleepSync(ms) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }

function phase(name, ms = phases.kernelClockMs()) {
  const delay = system.settings?.testDelay;
  if (delay && delay.phase === name) { sleepSync(delay.ms); ms = phases.kernelClockMs(); }
  system.phases[name] = Number(ms.toFixed(3));
  log(phases.formatPhase(name, ms, name === 'ready' ? `boot=${system.bootId}` : ''));
}

function step(name, fn) {
  try {
    return fn();
  } catch (e) {
    error(name, e.stack || e.message);
    return undefined;
  }
}

// --- mounts -----------------------------------------------------------------

function mountAll() {
  const a = system.addon;
  const mount = (source, target, type, flags, data) => {
    fs.mkdirSync(target, { recursive: true });
    a.mount(source, target, type, flags, data);
  };
  const secure = a.MS_NOSUID | a.MS_NODEV;
  mount('proc', '/proc', 'proc', secure | a.MS_NOEXEC);
  mount('sysfs', '/sys', 'sysfs', secure | a.MS_NOEXEC);
  if (!fs.existsSync('/dev/null')) mount('devtmpfs', '/dev', 'devtmpfs', a.MS_NOSUID, 'mode=0755');
  for (const [target, mode] of [['/run', '0755'], ['/tmp', '1777'], ['/var', '0755'], ['/etc', '0755'], ['/home', '0755'], ['/root', '0700'], ['/dev/shm', '1777']]) {
    mount('tmpfs', target, 'tmpfs', secure, `mode=${mode},size=50%`);
  }
  fs.mkdirSync(RUN, { recursive: true });
  fs.mkdirSync('/var/log', { recursive: true });
  fs.mkdirSync('/var/tmp', { recursive: true, mode: 0o1777 });
  // Root does not follow a user's symbolic link in a sticky world-writable
  // directory (/tmp), nor may users hard-link files they cannot write.
  fs.writeFileSync('/proc/sys/fs/protected_symlinks', '1');
  fs.writeFileSync('/proc/sys/fs/protected_hardlinks', '1');
}

// --- sealed console lines -----------------------------------------------------

// With a key on the command line: hide it from everyone but init before any
// other process exists, then seal every line of init's from the first, which
// names the boot (seal.js, images/PROTOCOL.md).
function startSealing(cmdlineText) {
  const keyHex = system.settings.seal;
  // From here on the key lives only in the sealer: not in hello, not in settings.
  system.settings.seal = null;
  if (!keyHex) return;
  let hideError = null;
  try { hideKey(cmdlineText, keyHex); } catch (e) { hideError = e; }
  seal = createSealer({ key: keyFromHex(keyHex), bootId: system.bootId, hmacHex: system.addon.hmacSha256Hex });
  log(`nodeos: boot ${system.bootId}`);
  if (hideError) error('seal', `the key could not be hidden from users: ${hideError.message}`);
}

function hideKey(cmdlineText, keyHex) {
  // The kernel logs its command line; only root may read the log now.
  fs.writeFileSync('/proc/sys/kernel/dmesg_restrict', '1');
  const copy = `${RUN}/cmdline`;
  fs.writeFileSync(copy, hideSealKey(cmdlineText, keyHex), { mode: 0o444 });
  system.addon.mount(copy, '/proc/cmdline', null, system.addon.MS_BIND);
}

// --- the boot configuration ---------------------------------------------------

function findDiskBySerial(serial) {
  for (const name of safeReaddir('/sys/block')) {
    try {
      if (fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() === serial) return `/dev/${name}`;
    } catch { /* not a virtio disk */ }
  }
  return null;
}

function disksBySerial() {
  const disks = [];
  for (const name of safeReaddir('/sys/block')) {
    try { disks.push({ device: `/dev/${name}`, serial: fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() }); } catch { /* no serial */ }
  }
  return disks;
}

function safeReaddir(dir) { try { return fs.readdirSync(dir); } catch { return []; } }

function readHead(device, length) {
  const fd = fs.openSync(device, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const n = fs.readSync(fd, buffer, 0, length, 0);
    return buffer.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function readConfigVolume(device) {
  const fd = fs.openSync(device, 'r');
  try {
    const max = 4 * 1024 * 1024;
    const chunks = [];
    let total = 0;
    const buffer = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, total);
      if (n === 0) break;
      const chunk = Buffer.from(buffer.subarray(0, n));
      chunks.push(chunk);
      total += n;
      if (chunk.includes(0) || total >= max) break;
    }
    return Buffer.concat(chunks);
  } finally {
    fs.closeSync(fd);
  }
}

function loadConfig() {
  const device = findDiskBySerial(system.settings.config);
  if (!device) { system.configResult = { applied: true, errors: [], source: 'none' }; return; }
  const { config, errors } = parseConfigVolume(readConfigVolume(device));
  system.configResult = { applied: errors.length === 0, errors, source: device };
  if (errors.length) {
    log('nodeos: config failed');
    for (const e of errors) error('config', e);
    return;
  }
  system.config = config;
  log('nodeos: config ok');
}

function writeConfigResult() {
  const result = { bootId: system.bootId, ...system.configResult };
  fs.writeFileSync(`${RUN}/config-result.json`, JSON.stringify(result, null, 2) + '\n');
}

// --- users and homes ---------------------------------------------------------

function addUser(name, fields) {
  const given = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  const existing = system.users.get(name) || {};
  const home = name === 'root' ? '/root' : `/home/${name}`;
  const uid = given.uid ?? existing.uid ?? defaultUid(name);
  system.users.set(name, { name, home, password: null, shell: '/bin/nsh', ...existing, ...given, uid, gid: given.gid ?? existing.gid ?? uid });
}

function mountHomes() {
  const a = system.addon;
  for (const [name, user] of Object.entries(system.config?.users ?? {})) {
    addUser(name, { uid: name === 'root' ? 0 : user.uid, gid: user.gid, password: user.password ?? null, shell: user.shell ?? '/bin/nsh' });
  }
  if (!system.users.has('root')) addUser('root', { uid: 0, gid: 0 });
  for (const { device, serial } of disksBySerial()) {
    const m = /^home-([a-z_][a-z0-9_-]{0,31})$/.exec(serial);
    if (!m) continue;
    const name = m[1];
    const target = name === 'root' ? '/root' : `/home/${name}`;
    fs.mkdirSync(target, { recursive: true });
    // Never format, never repair: a volume that is not clean ext4 is either
    // left alone or mounted read-only, and the console says which and why.
    let superblock;
    try { superblock = inspectSuperblock(readHead(device, 2048)); } catch (e) { superblock = { ext4: false, reason: `unreadable (${e.code})` }; }
    // The serial names the user even when the volume is unusable: they get
    // a home in RAM for this boot, and the console says why.
    const ephemeral = (why) => {
      error('homes', `${serial} (${device}): not mounted${why}; ${name}'s home is ephemeral this boot`);
      addUser(name, { volumeUnusable: true });
    };
    if (!superblock.ext4) {
      ephemeral(`: ${superblock.reason}`);
      continue;
    }
    let readOnly = superblock.hasErrors;
    try {
      const flags = a.MS_NOSUID | a.MS_NODEV | a.MS_NOATIME | (readOnly ? a.MS_RDONLY : 0);
      a.mount(device, target, 'ext4', flags, 'errors=remount-ro');
      if (readOnly) error('homes', `${serial} (${device}): the file system has recorded errors; mounted read-only, check it with e2fsck`);
    } catch (first) {
      try {
        a.mount(device, target, 'ext4', a.MS_NOSUID | a.MS_NODEV | a.MS_RDONLY, 'noload');
        readOnly = true;
        error('homes', `${serial} (${device}): could not be mounted read-write (${first.code}); mounted read-only, check it with e2fsck`);
      } catch (second) {
        ephemeral(` (${second.code}: ${second.message})`);
        continue;
      }
    }
    system.homes.push(target);
    // The owner of the volume's root directory is the user's uid: it travels
    // with the volume, so a home keeps its owner across boots and machines.
    const stat = fs.statSync(target);
    const configured = system.config?.users?.[name]?.uid;
    let uid = name === 'root' ? 0 : stat.uid !== 0 ? stat.uid : configured ?? defaultUid(name);
    if (configured !== undefined && name !== 'root' && stat.uid !== 0 && stat.uid !== configured) {
      warning('homes', `${serial}: the volume belongs to uid ${stat.uid}, the configuration says ${configured}; the volume wins`);
    }
    const gid = stat.uid !== 0 ? stat.gid : system.config?.users?.[name]?.gid ?? uid;
    if (!readOnly) {
      fs.chownSync(target, uid, gid);
      fs.chmodSync(target, 0o700);
    }
    addUser(name, { uid, gid, volume: device, readOnly });
  }
  // Users without a volume get an ephemeral home in RAM.
  for (const user of system.users.values()) {
    if (user.volume) continue;
    if (user.name !== 'root' && !user.volumeUnusable) warning('homes', `no volume with serial home-${user.name}: ${user.name}'s home is in RAM this boot and is lost at shutdown`);
    fs.mkdirSync(user.home, { recursive: true });
    fs.chownSync(user.home, user.uid, user.gid);
    fs.chmodSync(user.home, 0o700);
  }
  writeEtc();
}

function writeEtc() {
  const users = [...system.users.values()].sort((x, y) => x.uid - y.uid);
  fs.writeFileSync('/etc/passwd', users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:${u.shell}\n`).join(''));
  fs.writeFileSync('/etc/group', users.map((u) => `${u.name}:x:${u.gid}:\n`).join(''));
  // No password means the account cannot log in ("!"), as in shadow(5).
  fs.writeFileSync('/etc/shadow', users.map((u) => `${u.name}:${u.password ?? '!'}\n`).join(''), { mode: 0o600 });
  const hostname = currentHostname();
  fs.writeFileSync('/etc/hostname', hostname + '\n');
  fs.writeFileSync('/etc/hosts', `127.0.0.1 localhost\n127.0.1.1 ${hostname}\n`);
  const registry = system.config?.registry;
  fs.writeFileSync('/etc/npmrc', [
    registry ? `registry=${registry}` : null,
    'prefix=${HOME}', 'cache=${HOME}/.npm', 'update-notifier=false', 'fund=false', 'audit=false', 'loglevel=warn',
  ].filter(Boolean).join('\n') + '\n');
}

// Who an agent request runs as: a user by name, a raw uid, or root.
system.account = (message) => {
  let user = system.users.get('root');
  if (typeof message.user === 'string') {
    user = system.users.get(message.user);
    if (!user) throw Object.assign(new Error(`user: no user ${JSON.stringify(message.user)} on this machine`), { code: 'EINVAL' });
  } else if (Number.isInteger(message.uid)) {
    user = [...system.users.values()].find((u) => u.uid === message.uid) ?? { name: String(message.uid), uid: message.uid, gid: message.gid ?? message.uid, home: '/' };
  }
  return {
    uid: user.uid, gid: Number.isInteger(message.gid) ? message.gid : user.gid, home: user.home,
    env: { PATH: `${user.home}/bin:/bin:/usr/bin`, HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/nsh' },
  };
};

// --- network -----------------------------------------------------------------

function configureNetwork() {
  const a = system.addon;
  a.ifup('lo', '127.0.0.1', '255.0.0.0');
  if (!fs.existsSync('/sys/class/net/eth0')) return;
  const net = system.settings.net ?? { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' };
  const mask = prefixToMask(net.prefix);
  a.ifup('eth0', net.address, mask, net.gateway);
  fs.writeFileSync('/etc/resolv.conf', 'nameserver 10.0.2.3\n');
}

function prefixToMask(prefix) {
  const bits = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

// --- processes ---------------------------------------------------------------

// Every child that node spawns is libuv's to wait for; the reaper only takes
// orphans that were re-parented to PID 1. child_process costs ~300 ms to load
// under TCG, so nothing before the ready line loads it unless it must.
let childProcessModule = null;
function childProcess() {
  if (childProcessModule) return childProcessModule;
  childProcessModule = require('child_process');
  const { ChildProcess } = childProcessModule;
  const original = ChildProcess.prototype.spawn;
  ChildProcess.prototype.spawn = function spawn(...args) {
    const result = original.apply(this, args);
    if (this.pid) {
      system.spawned.add(this.pid);
      this.once('exit', () => system.spawned.delete(this.pid));
    }
    return result;
  };
  return childProcessModule;
}
system.childProcess = childProcess;

function reapOrphans() {
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === 1 || system.spawned.has(pid)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && fields[1] === '1') {
      try { system.addon.waitpid(pid, true); } catch { /* raced with libuv */ }
    }
  }
}

function otherProcesses() {
  const pids = [];
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry) || entry === '1') continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[1] !== '2' && entry !== '2' && fields[0] !== 'Z') pids.push(Number(entry)); // kthreads hang off pid 2
    } catch { /* gone */ }
  }
  return pids;
}

function startServices() {
  for (const service of system.config?.services ?? []) startService(service);
}

function startService(service) {
  const { spawn } = childProcess();
  const account = system.account({ user: service.user });
  const state = system.services.get(service.name) ?? { restarts: [], child: null, stopped: false };
  system.services.set(service.name, state);
  const logFile = fs.openSync(`/var/log/${service.name}.log`, 'a');
  const child = spawn(service.argv[0], service.argv.slice(1), {
    cwd: service.cwd, env: { ...account.env, ...service.env }, uid: account.uid, gid: account.gid, detached: true, stdio: ['ignore', logFile, logFile],
  });
  fs.closeSync(logFile);
  state.child = child;
  child.on('error', (e) => error(`service ${service.name}`, e.message));
  child.on('exit', (status, signal) => {
    state.child = null;
    if (system.shuttingDown || state.stopped) return;
    const failed = status !== 0;
    log(`nodeos: service ${service.name} exited (status ${status}, signal ${signal})`);
    if (service.restart === 'never' || (service.restart === 'on-failure' && !failed)) return;
    const now = Date.now();
    state.restarts = state.restarts.filter((t) => now - t < 60_000);
    if (state.restarts.length >= 5) {
      error(`service ${service.name}`, 'crash loop (5 restarts in 60 s), not restarted again');
      state.stopped = true;
      return;
    }
    state.restarts.push(now);
    setTimeout(() => startService(service), 200 * state.restarts.length);
  });
}

// Packages listed in the configuration are part of coming up as specified;
// when there are any, their install time is a boot phase of its own.
function installPackages() {
  const wanted = Object.values(system.config?.users ?? {}).some((u) => u.packages?.length);
  if (!wanted) return;
  installEachUsersPackages();
  phase('packages');
}

function installEachUsersPackages() {
  for (const [name, user] of Object.entries(system.config?.users ?? {})) {
    if (!user.packages?.length) continue;
    const { execFileSync } = childProcess();
    const account = system.account({ user: name });
    const started = phases.kernelClockMs();
    try {
      execFileSync('/bin/npm', ['install', '--global', ...user.packages], {
        env: account.env, cwd: account.home, uid: account.uid, gid: account.gid, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000,
      });
      log(`nodeos: packages ${name} ok ${(phases.kernelClockMs() - started).toFixed(0)}ms ${user.packages.join(' ')}`);
    } catch (e) {
      system.configResult.applied = false;
      const detail = (e.stderr?.toString() || e.message).trim().split('\n').slice(-3).join(' | ');
      system.configResult.errors.push(`users.${name}.packages: npm install failed: ${detail}`);
      error('packages', `${name}: npm install ${user.packages.join(' ')} failed: ${detail}`);
    }
  }
}

// --- shutdown ----------------------------------------------------------------

function shutdown(how, reason) {
  if (system.shuttingDown) return;
  system.shuttingDown = true;
  log(`nodeos: shutdown ${how} (${reason})`);
  try { system.agent?.event('shutdown', { reason: how }); } catch { /* port gone */ }
  const a = system.addon;
  try { process.kill(-1, 'SIGTERM'); } catch { /* nothing else runs */ }
  const deadline = Date.now() + 3000;
  while (otherProcesses().length && Date.now() < deadline) sleepSync(20);
  const left = otherProcesses();
  if (left.length) {
    warning('shutdown', `${left.length} process(es) ignored SIGTERM, killing: ${left.join(' ')}`);
    try { process.kill(-1, 'SIGKILL'); } catch { /* gone */ }
    sleepSync(50);
  }
  a.sync();
  for (const target of system.homes.reverse()) {
    try {
      a.umount(target, 0);
    } catch (e) {
      warning('shutdown', `umount ${target}: ${e.code}; detaching`);
      try { a.umount(target, a.MNT_DETACH); } catch { /* nothing more to do */ }
    }
  }
  a.sync();
  log(how === 'restart' ? 'nodeos: rebooting' : 'nodeos: halted');
  try { a.reboot(how); } catch (e) { error('shutdown', e.message); }
}
system.shutdown = shutdown;

// --- the agent and the console ------------------------------------------------

function findAgentPort() {
  for (const port of safeReaddir('/sys/class/virtio-ports')) {
    try {
      if (fs.readFileSync(`/sys/class/virtio-ports/${port}/name`, 'utf8').trim() === 'org.nodeos.agent') return `/dev/${port}`;
    } catch { /* unnamed port */ }
  }
  return null;
}

function startAgent() {
  const device = findAgentPort();
  if (!device) { warning('agent', 'no virtio port named org.nodeos.agent; the agent is off'); return; }
  const { createAgent } = require('./agent');
  const { makeOps } = require('./agent-ops');
  // With test faults the agent must be able to close its port, and a
  // blocking read in libuv's pool would pin the port open until data came:
  // then it reads without blocking and polls instead.
  const nonBlocking = system.settings.testFaults;
  const fd = fs.openSync(device, fs.constants.O_RDWR | (nonBlocking ? fs.constants.O_NONBLOCK : 0));
  // Writes block while no host is connected, so they queue off the main thread.
  const queue = [];
  let writing = false;
  const drained = [];
  const pump = () => {
    if (writing) return;
    // Nothing left to write, or nowhere to write it: whoever waits may go on.
    if (port.closed) queue.length = 0;
    if (queue.length === 0) { for (const done of drained.splice(0)) done(); return; }
    writing = true;
    const chunk = queue.shift();
    fs.write(fd, chunk, 0, chunk.length, null, (err, written) => {
      writing = false;
      if (err?.code === 'EAGAIN') { queue.unshift(chunk); setTimeout(pump, 5); return; }
      if (!err && written < chunk.length) queue.unshift(chunk.subarray(written));
      pump();
    });
  };
  const send = (chunk) => { queue.push(chunk); pump(); };
  const port = {
    closed: false,
    send,
    queued: () => queue.length,
    // Calls back once everything queued so far is written (or the port closed).
    drain(done) { drained.push(done); pump(); },
    // Only test faults close the port: the agent then is gone for this boot.
    close() { port.closed = true; queue.length = 0; try { fs.closeSync(fd); } catch { /* already closed */ } },
  };
  let ops = makeOps({ system });
  if (system.settings.testFaults) {
    warning('agent', 'test faults are enabled (nodeos.test.faults): the agent obeys testFault requests');
    ops = { ...ops, ...require('./test-faults').makeFaultOps({ port, log, writeConsole }) };
  }
  const agent = createAgent({ ops, send, log });
  system.agent = agent;
  // Runs `then` once the agent's answers are out, but within `ms` even if a
  // host stopped reading: a shutdown must never hang on the channel.
  system.afterAgentReplies = (then, ms = 2000) => {
    let ran = false;
    const once = () => { if (!ran) { ran = true; clearTimeout(timer); then(); } };
    const timer = setTimeout(once, ms);
    port.drain(once);
  };
  const buffer = Buffer.alloc(64 * 1024);
  let idle = 0;
  const read = () => port.closed || fs.read(fd, buffer, 0, buffer.length, null, (err, n) => {
    if (port.closed) return;
    if (err?.code === 'EAGAIN') { idle++; setTimeout(read, idle < 200 ? 5 : 20); return; }
    if (err) { error('agent', `read: ${err.message}`); setTimeout(read, 500); return; }
    // 0 means no host is connected (virtio_console returns at once): poll.
    if (n === 0) { idle++; setTimeout(read, idle < 200 ? 10 : 100); return; }
    idle = 0;
    agent.receive(Buffer.from(buffer.subarray(0, n)));
    read();
  });
  read();
  agent.event('ready', { bootId: system.bootId });
}

system.hello = () => ({
  protocol: 1,
  nodeVersion: process.version,
  kernel: read('/proc/sys/kernel/osrelease'),
  bootId: system.bootId,
  hostname: currentHostname(),
  phases: system.phases,
  config: system.configResult,
  startedFrom: system.startedFrom,
});

// The name init set; loading 'os' just to read it back costs ~10 ms under TCG.
function currentHostname() { return system.hostname ?? require('os').hostname(); }

function read(file) { try { return fs.readFileSync(file, 'utf8').trim(); } catch { return null; } }

// Warnings and worse from the kernel log, as agent events (kernel-log.js).
function startKernelLog() {
  require('./kernel-log').startKernelLog({
    addon: system.addon,
    send: (name, fields) => system.agent.event(name, fields),
    onError: (e) => error('kernel-log', `read /dev/kmsg: ${e.message}`),
  });
}

function startConsole() {
  const tty = require('tty');
  childProcess();
  const { interactive, newState } = require('./nsh');
  const fd = fs.openSync('/dev/ttyS0', 'r+');
  try { system.addon.setctty(fd); } catch (e) { warning('console', e.message); }
  const run = () => {
    const input = new tty.ReadStream(fd);
    const output = new tty.WriteStream(fd);
    const state = newState({ env: system.account({}).env, cwd: '/root' });
    state.env.TERM = 'vt100';
    log('nodeos: console shell on ttyS0 (type help)');
    interactive({ input, output, fd, state, onExit: () => setTimeout(run, 100) });
  };
  run();
}

// --- boot --------------------------------------------------------------------

// startedFrom: 'snapshot' when node started from /lib/nodeos/init.blob,
// 'script' when it ran /sbin/init (images/bundle-init.js has both).
function main({ startedFrom = 'script' } = {}) {
  const initStart = phases.kernelClockMs();
  system.startedFrom = startedFrom;
  process.on('uncaughtException', (e) => error('init', `uncaught exception: ${e.stack || e}`));
  process.on('unhandledRejection', (e) => error('init', `unhandled rejection: ${e?.stack || e}`));
  process.on('SIGINT', () => {}); // Ctrl-C at the console is for the foreground command
  process.on('SIGTERM', () => shutdown('poweroff', 'SIGTERM'));
  process.on('SIGUSR2', () => shutdown('restart', 'SIGUSR2'));
  process.title = 'init';

  // libuv's pool has 4 threads by default, and init pins some in blocking
  // reads for good (the agent's port, the kernel log) or for a while (a
  // write to a port no host reads); the rest serve the agent's file ops.
  // Read once, at the pool's first use: before that, in startAgent.
  process.env.UV_THREADPOOL_SIZE ??= '8';

  system.addon = require('./nodeos.node');
  try { system.addon.setsid(); } catch { /* already a session leader */ }
  // Its error waits until sealing is decided: every line after that is sealed.
  let mountError = null;
  try { mountAll(); } catch (e) { mountError = e; }
  const ok = fs.existsSync('/proc/self');
  let cmdlineText = '';
  try { cmdlineText = fs.readFileSync('/proc/cmdline', 'utf8'); } catch { /* no /proc: defaults */ }
  const cmdline = parseCmdline(cmdlineText);
  system.settings = cmdline.settings;
  system.bootId = read('/proc/sys/kernel/random/boot_id') ?? '';
  step('seal', () => startSealing(cmdlineText));
  if (mountError) error('mounts', mountError.stack || mountError.message);
  const kmsg = step('kmsg', readKmsg) ?? { records: [], offsetMs: 0 };
  const handover = phases.handoverFromKmsg(kmsg.records);
  const kernelMs = handover === null ? 0 : handover + kmsg.offsetMs;
  if (handover !== null) phase('kernel', kernelMs);
  // The process cannot start before the kernel hands over; when the two
  // clocks' conversion says otherwise (seen under TCG), trust the order.
  // process.uptime() counts from node's own start; perf_hooks would say the
  // same but costs ~100 ms to load under TCG.
  phase('node', Math.max(initStart - process.uptime() * 1000, kernelMs));
  phase('init', initStart);
  for (const e of cmdline.errors) error('cmdline', e);
  if (system.settings.testExit) { log('nodeos: init exits on purpose (nodeos.test.exit)'); process.exit(1); }
  if (!ok) error('mounts', 'the basic file systems are missing; carrying on');
  phase('mounts');

  step('config', loadConfig);
  const hostname = system.config?.hostname ?? system.settings.hostname;
  if (step('hostname', () => { system.addon.sethostname(hostname); return true; })) system.hostname = hostname;
  phase('config');
  step('homes', mountHomes);
  phase('homes');
  step('network', configureNetwork);
  phase('network');
  if (system.settings.agent) step('agent', startAgent);
  phase('agent');
  step('packages', installPackages);
  step('services', startServices);
  step('config-result', writeConfigResult);
  phase('ready');

  // Lazy work, after the ready line.
  setImmediate(() => {
    // The pool exists by now if the agent does (it reads through it); children need not see this.
    delete process.env.UV_THREADPOOL_SIZE;
    step('child-process', childProcess);
    if (system.settings.shell) step('console', startConsole);
    if (system.agent) step('kernel-log', startKernelLog);
  });
  process.on('SIGCHLD', () => setImmediate(reapOrphans));
  setInterval(reapOrphans, 5000).unref();
}

// Returns the kernel log records plus the offset that turns their clock
// (local_clock) into CLOCK_MONOTONIC, which every other phase uses: the two
// drift apart by tens of milliseconds under TCG. A marker record written at a
// known monotonic time gives the offset.
function readKmsg() {
  const marker = `nodeos-clock-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const writtenAt = phases.kernelClockMs();
  try { fs.writeFileSync('/dev/kmsg', `<7>${marker}\n`); } catch { /* no offset then */ }
  const records = system.addon.readKmsg();
  const markerRecord = records.find((r) => r.includes(marker));
  const markerMs = markerRecord ? Number(markerRecord.split(',')[2]) / 1000 : null;
  return { records, offsetMs: markerMs === null ? 0 : writtenAt - markerMs };
}

module.exports = { main, prefixToMask };
