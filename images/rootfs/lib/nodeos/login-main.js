'use strict';
// login [USER]: asks for the password (not echoed), checks it against the
// scrypt hash in /etc/shadow, and starts the user's shell in their home as
// them. An account without a password cannot log in (it is non-interactive).

const fs = require('fs');
const { spawnSync } = require('child_process');
const { verifyPassword } = require('./passwords');

// Reads one line from the terminal; with echo off the terminal is put in raw
// mode and the line is edited here (backspace), as getpass does.
function readLine(prompt, { echo }) {
  const stdin = process.stdin;
  const raw = !echo && stdin.isTTY;
  return new Promise((resolve) => {
    let line = '';
    const finish = (value) => {
      stdin.off('data', onData);
      stdin.pause();
      if (stdin._handle?.reading) { stdin._handle.reading = false; stdin._handle.readStop(); }
      if (raw) { stdin.setRawMode(false); fs.writeSync(1, '\n'); }
      resolve(value);
    };
    const onData = (chunk) => {
      for (const ch of chunk.toString('latin1')) {
        if (ch === '\r' || ch === '\n') return finish(line);
        if (ch === '\x03' || ch === '\x04') return finish(null);
        if (ch === '\x7f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    // Raw mode before the prompt: keys typed at once must not be echoed.
    if (raw) stdin.setRawMode(true);
    fs.writeSync(1, prompt);
    stdin.on('data', onData);
    stdin.once('end', () => finish(null));
    stdin.resume();
  });
}

function table(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':')); } catch { return []; }
}

async function main(args) {
  if (process.getuid() !== 0) { fs.writeSync(2, 'login: must be run by root\n'); return 1; }
  let name = args[0];
  if (!name) name = (await readLine('login: ', { echo: true }))?.trim();
  if (!name) return 1;
  const password = await readLine('Password: ', { echo: false });
  const user = table('/etc/passwd').find((f) => f[0] === name);
  const shadow = table('/etc/shadow').find((f) => f[0] === name);
  const hash = shadow ? shadow.slice(1).join(':') : '';
  // The same answer for a wrong user, a wrong password and no password, so
  // the prompt does not say which accounts exist.
  if (!user || password === null || !hash.startsWith('scrypt$') || !verifyPassword(password, hash)) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    fs.writeSync(1, 'Login incorrect\n');
    return 1;
  }
  const [, , uid, gid, , home, shell] = user;
  fs.writeSync(1, `Welcome to NodeOS, ${name}.\n`);
  const env = { PATH: `${home}/bin:/bin:/usr/bin`, HOME: home, USER: name, LOGNAME: name, SHELL: shell, TERM: process.env.TERM || 'vt100' };
  const result = spawnSync(shell || '/bin/nsh', [], { cwd: home, env, uid: Number(uid), gid: Number(gid), stdio: 'inherit' });
  return result.status ?? 0;
}

main(process.argv.slice(2)).then((status) => { process.exitCode = status; });
