'use strict';
// What the agent can do in the guest: run commands, move files, report memory,
// and stop the machine. Each op takes the request and returns its result.

const fs = require('fs');
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

function makeOps({ system }) {
  return {
    ping: async () => ({}),

    hello: async () => system.hello(),

    async exec(message) {
      const argv = field.required(message, 'argv', 'array');
      if (argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw new RequestError('EINVAL', 'argv: expected a non-empty array of strings');
      const account = system.account(message);
      const env = { ...account.env, ...field.optional(message, 'env', 'object', {}) };
      const cwd = field.optional(message, 'cwd', 'string', account.home);
      const stdin = field.optional(message, 'stdin', 'string', '');
      const timeoutMs = field.optional(message, 'timeoutMs', 'number', 0);
      const limit = field.optional(message, 'maxOutputBytes', 'integer', DEFAULT_MAX_OUTPUT);
      const started = process.hrtime.bigint();
      return await new Promise((resolve, reject) => {
        // detached: a session of its own, so console keys never signal it
        // and a timeout can kill the whole process group.
        const child = system.childProcess().spawn(argv[0], argv.slice(1), { cwd, env, uid: account.uid, gid: account.gid, detached: true, stdio: 'pipe' });
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
      const data = await fs.promises.readFile(file);
      const stat = await fs.promises.stat(file);
      return { data: data.toString('base64'), size: stat.size, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid };
    },

    async writeFile(message) {
      const file = field.required(message, 'path', 'string');
      const data = Buffer.from(field.required(message, 'data', 'string'), 'base64');
      const mode = field.optional(message, 'mode', 'integer', 0o644);
      await fs.promises.writeFile(file, data, { mode });
      await fs.promises.chmod(file, mode);
      const uid = field.optional(message, 'uid', 'integer');
      const gid = field.optional(message, 'gid', 'integer');
      if (uid !== undefined || gid !== undefined) await fs.promises.chown(file, uid ?? -1, gid ?? -1);
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
    async shutdown() { setImmediate(() => system.afterAgentReplies(() => system.shutdown('poweroff', 'agent'))); return {}; },
    async reboot() { setImmediate(() => system.afterAgentReplies(() => system.shutdown('restart', 'agent'))); return {}; },
  };
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

module.exports = { makeOps, parseMeminfo };
