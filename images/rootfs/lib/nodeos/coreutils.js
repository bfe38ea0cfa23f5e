'use strict';
// The handful of tools a person expects at a prompt, in JavaScript. Each
// /bin/NAME is a two-line script that calls run(NAME, args).

const fs = require('fs');
const path = require('path');
const os = require('os');

const out = (text) => fs.writeSync(1, text);
const err = (text) => fs.writeSync(2, text);

function passwd() {
  try {
    return fs.readFileSync('/etc/passwd', 'utf8').split('\n').filter(Boolean).map((l) => {
      const [name, , uid, gid, , home, shell] = l.split(':');
      return { name, uid: Number(uid), gid: Number(gid), home, shell };
    });
  } catch { return []; }
}

function nameOf(uid) { return passwd().find((u) => u.uid === uid)?.name ?? String(uid); }

const TOOLS = {
  cat(args) {
    if (args.length === 0) args = ['-'];
    let status = 0;
    for (const file of args) {
      try { out(fs.readFileSync(file === '-' ? 0 : file)); } catch (e) { err(`cat: ${file}: ${e.code}\n`); status = 1; }
    }
    return status;
  },
  ls(args) {
    const long = args.includes('-l');
    const all = args.includes('-a');
    const targets = args.filter((a) => !a.startsWith('-'));
    let status = 0;
    for (const target of targets.length ? targets : ['.']) {
      let entries;
      try {
        entries = fs.statSync(target).isDirectory() ? fs.readdirSync(target).sort() : [target];
      } catch (e) { err(`ls: ${target}: ${e.code}\n`); status = 1; continue; }
      if (targets.length > 1) out(`${target}:\n`);
      for (const name of entries) {
        if (!all && name.startsWith('.')) continue;
        if (!long) { out(name + '\n'); continue; }
        const file = entries.length === 1 && name === target ? target : path.join(target, name);
        const st = fs.lstatSync(file);
        const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
        const mode = [6, 3, 0].map((s) => ['r', 'w', 'x'].map((c, i) => (st.mode >> (s + 2 - i)) & 1 ? c : '-').join('')).join('');
        out(`${type}${mode} ${nameOf(st.uid).padEnd(8)} ${String(st.size).padStart(9)} ${name}${st.isSymbolicLink() ? ' -> ' + fs.readlinkSync(file) : ''}\n`);
      }
    }
    return status;
  },
  mkdir(args) { const p = args.includes('-p'); return each(args, 'mkdir', (a) => fs.mkdirSync(a, { recursive: p })); },
  rm(args) { const r = args.some((a) => /^-[a-z]*r/.test(a)); const f = args.some((a) => /^-[a-z]*f/.test(a)); return each(args, 'rm', (a) => fs.rmSync(a, { recursive: r, force: f })); },
  touch(args) { return each(args, 'touch', (a) => { const now = new Date(); try { fs.utimesSync(a, now, now); } catch { fs.closeSync(fs.openSync(a, 'a')); } }); },
  cp(args) { const files = args.filter((a) => !a.startsWith('-')); return files.length === 2 ? wrap('cp', () => fs.cpSync(files[0], files[1], { recursive: args.includes('-r') })) : usage('cp [-r] SRC DEST'); },
  mv(args) { return args.length === 2 ? wrap('mv', () => fs.renameSync(args[0], args[1])) : usage('mv SRC DEST'); },
  sleep(args) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(args[0] ?? 0) * 1000); return 0; },
  id() { const uid = process.getuid(); const gid = process.getgid(); out(`uid=${uid}(${nameOf(uid)}) gid=${gid}\n`); return 0; },
  whoami() { out(nameOf(process.getuid()) + '\n'); return 0; },
  uname(args) { out((args.includes('-a') ? `Linux ${os.hostname()} ${os.release()} ${os.machine()} NodeOS` : args.includes('-r') ? os.release() : 'Linux') + '\n'); return 0; },
  hostname() { out(os.hostname() + '\n'); return 0; },
  ps() {
    out('  PID USER     COMMAND\n');
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).sort((a, b) => a - b)) {
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        if (!cmd) continue; // kernel threads
        const uid = Number(/Uid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
        out(`${String(pid).padStart(5)} ${nameOf(uid).padEnd(8)} ${cmd}\n`);
      } catch { /* exited */ }
    }
    return 0;
  },
  poweroff() { return wrap('poweroff', () => process.kill(1, 'SIGTERM')); },
  reboot() { return wrap('reboot', () => process.kill(1, 'SIGUSR2')); },
};

function each(args, tool, fn) {
  let status = 0;
  for (const a of args.filter((x) => !x.startsWith('-'))) {
    try { fn(a); } catch (e) { err(`${tool}: ${a}: ${e.code || e.message}\n`); status = 1; }
  }
  return status;
}
function wrap(tool, fn) { try { fn(); return 0; } catch (e) { err(`${tool}: ${e.code || e.message}\n`); return 1; } }
function usage(text) { err(`usage: ${text}\n`); return 2; }

function run(name, args) {
  process.exitCode = TOOLS[name](args);
}

module.exports = { run, TOOLS };
