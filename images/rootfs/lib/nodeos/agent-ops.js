'use strict';
// What the agent can do in the guest: run commands, move files, report memory,
// and stop the machine. Each op takes the request and returns its result.

const fs = require('fs');
const path = require('path');
const { RequestError, field } = require('./agent');

const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

function collect(stream, limit) {
  const chunks = [];
  let size = 0;
  let truncated = false;
  stream.on('data', (chunk) => {
    if (size >= limit) { truncated = true; return; }
    if (size + chunk.length > limit) { chunk = chunk.subarray(0, limit - size); truncated = true; }
    chunks.push(chunk);
    size += chunk.length;
  });
  return () => ({ text: Buffer.concat(chunks).toString('utf8'), truncated });
}

// What the operations may use of init: addon, the users map, account(message)
// (who a request runs as), hello(), childProcess() (init's hooked
// child_process), shutdown(how, reason), and afterReplies(then) (runs then
// once the agent's answers are written).
function makeOps({ addon, users, account: accountOf, hello, childProcess, shutdown, afterReplies }) {
  return {
    ping: async () => ({}),

    hello: async () => hello(),

    async exec(message) {
      const argv = field.required(message, 'argv', 'array');
      if (argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw new RequestError('EINVAL', 'argv: expected a non-empty array of strings');
      const account = accountOf(message);
      const env = { ...account.env, ...field.optional(message, 'env', 'object', {}) };
      const cwd = field.optional(message, 'cwd', 'string', account.home);
      const stdin = field.optional(message, 'stdin', 'string', '');
      const timeoutMs = field.optional(message, 'timeoutMs', 'number', 0);
      const limit = field.optional(message, 'maxOutputBytes', 'integer', DEFAULT_MAX_OUTPUT);
      const started = process.hrtime.bigint();
      return await new Promise((resolve, reject) => {
        // detached: a session of its own, so console keys never signal it
        // and a timeout can kill the whole process group.
        const child = childProcess().spawn(argv[0], argv.slice(1), { cwd, env, uid: account.uid, gid: account.gid, detached: true, stdio: 'pipe' });
        const out = collect(child.stdout, limit);
        const err = collect(child.stderr, limit);
        let timedOut = false;
        const timer = timeoutMs > 0 ? setTimeout(() => { timedOut = true; killGroup(child.pid); }, timeoutMs) : null;
        child.once('error', (e) => { clearTimeout(timer); reject(Object.assign(new Error(`exec ${argv[0]}: ${e.message}`), { code: e.code })); });
        child.once('close', (status, signal) => {
          clearTimeout(timer);
          const o = out(); const e = err();
          resolve({
            status, signal, stdout: o.text, stderr: e.text, stdoutTruncated: o.truncated, stderrTruncated: e.truncated,
            timedOut, durationMs: Number(process.hrtime.bigint() - started) / 1e6,
          });
        });
        child.stdin.on('error', () => {}); // a child that exits early closes its stdin
        child.stdin.end(stdin);
      });
    },

    async readFile(message) {
      const file = field.required(message, 'path', 'string');
      const { path: target, user } = fileOpener(file, field.optional(message, 'user', 'string'), users);
      if (!user) {
        const data = await fs.promises.readFile(target);
        const stat = await fs.promises.stat(target);
        return { data: data.toString('base64'), size: stat.size, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid };
      }
      const fd = openAs(addon, target, user, fs.constants.O_RDONLY, 0);
      try {
        const data = await fdCall(fs.readFile, fd);
        const stat = await fdCall(fs.fstat, fd);
        return { data: data.toString('base64'), size: stat.size, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid };
      } finally {
        fs.close(fd, () => {});
      }
    },

    async writeFile(message) {
      const file = field.required(message, 'path', 'string');
      const data = Buffer.from(field.required(message, 'data', 'string'), 'base64');
      const mode = field.optional(message, 'mode', 'integer', 0o644);
      if (mode < 0 || mode > 0o7777) throw new RequestError('EINVAL', 'mode: expected a file mode from 0 to 0o7777');
      const uid = field.optional(message, 'uid', 'integer');
      const gid = field.optional(message, 'gid', 'integer');
      const { path: target, user } = fileOpener(file, field.optional(message, 'user', 'string'), users);
      if (!user) {
        await fs.promises.writeFile(target, data, { mode });
        await fs.promises.chmod(target, mode);
        if (uid !== undefined || gid !== undefined) await fs.promises.chown(target, uid ?? -1, gid ?? -1);
        return { size: data.length };
      }
      const { O_WRONLY, O_CREAT, O_TRUNC } = fs.constants;
      const fd = openAs(addon, target, user, O_WRONLY | O_CREAT | O_TRUNC, mode);
      try {
        await fdCall(fs.writeFile, fd, data);
        const stat = await fdCall(fs.fstat, fd);
        // What the user could do with chmod and chown: a file of someone else's
        // that they may write keeps its mode and owner.
        const own = user.uid === 0 || stat.uid === user.uid;
        if (own && (stat.mode & 0o7777) !== mode) await fdCall(fs.fchmod, fd, mode);
        const chown = ownership({ uid, gid }, user, own);
        if (chown) await fdCall(fs.fchown, fd, chown.uid, chown.gid);
      } finally {
        fs.close(fd, () => {});
      }
      return { size: data.length };
    },

    async meminfo() {
      const info = parseMeminfo(await fs.promises.readFile('/proc/meminfo', 'utf8'));
      const status = await fs.promises.readFile('/proc/1/status', 'utf8');
      const rss = /VmRSS:\s+(\d+) kB/.exec(status);
      return { memTotalKiB: info.MemTotal, memAvailableKiB: info.MemAvailable, memFreeKiB: info.MemFree, initRssKiB: rss ? Number(rss[1]) : null };
    },

    // The answer is queued when the handler returns; the machine goes down only
    // once it has been written, or the host would wait for it forever.
    async shutdown() { setImmediate(() => afterReplies(() => shutdown('poweroff', 'agent'))); return {}; },
    async reboot() { setImmediate(() => afterReplies(() => shutdown('restart', 'agent'))); return {}; },
  };
}

// Who opens a file for readFile and writeFile: the user the request names;
// else the owner of the home the path lies in (users: /root is root's,
// /home/NAME NAME's); else nobody in particular, and root opens it as it
// always has (protected_symlinks keeps it from following a user's link in a
// sticky directory). With a user, no symbolic link is followed anywhere in
// the path: a user's link must not lend them root's reach.
function fileOpener(file, userName, users) {
  // Resolved first, so that "/tmp/../home/alice/x" counts as alice's.
  const resolved = path.posix.resolve('/', file);
  if (userName !== undefined) {
    const user = users.get(userName);
    if (!user) throw new RequestError('EINVAL', `user: no user ${JSON.stringify(userName)} on this machine`);
    return { path: resolved, user };
  }
  for (const user of users.values()) {
    if (!user.home || user.home === '/') continue;
    if (resolved === user.home || resolved.startsWith(`${user.home}/`)) return { path: resolved, user };
  }
  return { path: resolved, user: null };
}

// chown's part of writeFile as a user: root's writes are chowned as asked;
// a user's only to their own ids (a new file has them already), and any
// other uid or gid is left as it is, as chown would refuse it to them.
function ownership({ uid, gid }, user, own) {
  if (uid === undefined && gid === undefined) return null;
  if (user.uid === 0) return { uid: uid ?? -1, gid: gid ?? -1 };
  if (!own || (uid !== undefined && uid !== user.uid) || (gid !== undefined && gid !== user.gid)) return null;
  return { uid: -1, gid: gid ?? -1 };
}

function openAs(addon, file, user, flags, mode) {
  try {
    return addon.openAs(file, flags, mode, user.uid, user.gid);
  } catch (e) {
    const why = e.code === 'ELOOP' ? 'a symbolic link is in the path (none is followed for a user)'
      : (/failed: (.*) \(E[A-Z0-9]+\)$/.exec(e.message)?.[1] ?? e.message).replace(/^[A-Z]/, (c) => c.toLowerCase());
    throw Object.assign(new Error(`${e.code}: ${why}, open '${file}' as ${user.name}`), { code: e.code });
  }
}

// fs's callback functions on a descriptor (fs.promises takes only FileHandles).
function fdCall(fn, ...args) {
  return new Promise((resolve, reject) => fn(...args, (err, value) => (err ? reject(err) : resolve(value))));
}

function killGroup(pid) {
  try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
}

function parseMeminfo(text) {
  const info = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) info[m[1]] = Number(m[2]);
  }
  return info;
}

module.exports = { makeOps, parseMeminfo, fileOpener, ownership };
