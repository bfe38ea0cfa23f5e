'use strict';
// Runs what shell.js parses: builtins in-process, everything else as child
// processes wired into pipelines. Used by the console, /bin/sh and /bin/nsh.

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { parse, expandWord, ShellSyntaxError } = require('./shell');

const BUILTINS = {
  cd(args, state) {
    const target = path.resolve(state.cwd, args[0] ?? state.env.HOME ?? '/');
    let stat;
    try { stat = fs.statSync(target); } catch (e) { return { status: 1, stderr: `cd: ${args[0]}: ${e.code}\n` }; }
    if (!stat.isDirectory()) return { status: 1, stderr: `cd: ${args[0]}: not a directory\n` };
    state.cwd = target;
    state.env.PWD = target;
    return { status: 0 };
  },
  pwd: (args, state) => ({ status: 0, stdout: state.cwd + '\n' }),
  echo(args) {
    const newline = args[0] !== '-n';
    return { status: 0, stdout: (newline ? args : args.slice(1)).join(' ') + (newline ? '\n' : '') };
  },
  export(args, state) {
    for (const arg of args) {
      const eq = arg.indexOf('=');
      if (eq > 0) state.env[arg.slice(0, eq)] = arg.slice(eq + 1);
    }
    return { status: 0 };
  },
  unset(args, state) { for (const name of args) delete state.env[name]; return { status: 0 }; },
  env: (args, state) => ({ status: 0, stdout: Object.entries(state.env).map(([k, v]) => `${k}=${v}\n`).join('') }),
  true: () => ({ status: 0 }),
  false: () => ({ status: 1 }),
  exit(args, state) { state.exit = args.length ? Number(args[0]) & 255 : state.status; return { status: state.exit }; },
  help: () => ({ status: 0, stdout: 'nsh: builtins: cd pwd echo export unset env true false exit help; `node` starts the REPL; anything else runs from PATH\n' }),
};

function openRedirect(redirect, state) {
  const file = path.resolve(state.cwd, expandWord(redirect.target, state.env, state.status));
  const flags = { '>': 'w', '>>': 'a', '<': 'r', '2>': 'w' }[redirect.op];
  return fs.openSync(file, flags, 0o666);
}

async function runPipeline(pipeline, state, io) {
  const opened = [];
  const children = [];
  let previous = null; // the readable end feeding the next command
  let builtinResult = null;
  try {
    for (let index = 0; index < pipeline.length; index++) {
      const command = pipeline[index];
      const last = index === pipeline.length - 1;
      const env = { ...state.env };
      for (const a of command.assignments) env[a.name] = expandWord(a.value, state.env, state.status);
      const argv = command.argv.map((w) => expandWord(w, state.env, state.status));
      let stdin = previous ?? io.stdin;
      let stdout = last ? io.stdout : 'pipe';
      let stderr = io.stderr;
      for (const r of command.redirects) {
        if (r.op === '2>&1') { stderr = stdout; continue; }
        const fd = openRedirect(r, state);
        opened.push(fd);
        if (r.op === '<') stdin = fd; else if (r.op === '2>') stderr = fd; else stdout = fd;
      }
      if (argv.length === 0) { // assignments only: they set shell variables
        Object.assign(state.env, Object.fromEntries(command.assignments.map((a) => [a.name, env[a.name]])));
        builtinResult = { status: 0 };
        continue;
      }
      const builtin = BUILTINS[argv[0]];
      if (builtin) {
        if (index > 0) throw new Error(`${argv[0]}: a builtin cannot read from a pipe`);
        const result = builtin(argv.slice(1), state);
        builtinResult = result;
        if (last) {
          if (result.stdout) writeTo(stdout, result.stdout);
          if (result.stderr) writeTo(stderr, result.stderr);
          previous = null;
        } else {
          previous = 'pipe';
          builtinResult.pending = result.stdout ?? '';
        }
        continue;
      }
      const child = spawn(argv[0], argv.slice(1), {
        cwd: state.cwd, env, stdio: [stdin === 'pipe' ? 'pipe' : stdin, stdout, stderr], uid: io.uid, gid: io.gid,
      });
      if (stdin === 'pipe' && builtinResult?.pending !== undefined) child.stdin.end(builtinResult.pending);
      children.push(new Promise((resolve) => {
        child.once('error', (e) => {
          const status = e.code === 'ENOENT' ? 127 : 126;
          writeTo(io.stderr, `nsh: ${argv[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
          resolve(status);
        });
        child.once('close', (code, signal) => resolve(code ?? 128 + (require('os').constants.signals[signal] ?? 0)));
      }));
      previous = last ? null : child.stdout;
    }
    const statuses = await Promise.all(children);
    return statuses.length ? statuses[statuses.length - 1] : builtinResult?.status ?? 0;
  } finally {
    for (const fd of opened) fs.closeSync(fd);
  }
}

function writeTo(target, text) {
  if (typeof target === 'number') fs.writeSync(target, text);
  else if (target === 'inherit' || target === undefined) process.stdout.write(text);
}

// Runs one line; returns the status of the last pipeline that ran.
async function runLine(line, state, io) {
  let list;
  try {
    list = parse(line);
  } catch (e) {
    if (!(e instanceof ShellSyntaxError)) throw e;
    writeTo(io.stderr, `nsh: ${e.message}\n`);
    state.status = 2;
    return 2;
  }
  let run = true;
  for (const item of list) {
    if (run) {
      try {
        state.status = await runPipeline(item.pipeline, state, io);
      } catch (e) {
        writeTo(io.stderr, `nsh: ${e.message}\n`);
        state.status = e.code === 'ENOENT' ? 127 : 1;
      }
      if (state.exit !== undefined) return state.exit;
    }
    // A skipped pipeline leaves the status as it was, as in POSIX sh.
    if (item.next === '&&') run = state.status === 0;
    else if (item.next === '||') run = state.status !== 0;
    else run = true;
  }
  return state.status;
}

function newState({ env = process.env, cwd = process.cwd() } = {}) {
  return { env: { ...env }, cwd, status: 0, exit: undefined };
}

function prompt(state) {
  const user = state.env.USER || 'root';
  const host = state.hostname || require('os').hostname();
  return `${user}@${host}:${state.cwd}${user === 'root' ? '#' : '$'} `;
}

// Drives a terminal: the kernel's line discipline echoes and edits (cooked
// mode), and input is paused while a command owns the terminal, so a REPL or
// any other child reads the keys itself.
// pause() alone keeps libuv reading until the stream's buffer fills, which
// would steal keys from the command that now owns the terminal.
function holdInput(input) {
  input.pause();
  if (input._handle && input._handle.reading) {
    input._handle.reading = false;
    input._handle.readStop();
  }
}

function interactive({ input, output, fd, state, onExit, extraBuiltins = {} }) {
  const readline = require('readline');
  const rl = readline.createInterface({ input, terminal: false, crlfDelay: Infinity });
  const io = { stdin: fd, stdout: fd, stderr: fd };
  let busy = false;
  const show = () => output.write(prompt(state));
  rl.on('line', async (line) => {
    if (busy) return;
    busy = true;
    holdInput(input);
    try {
      const extra = extraBuiltins[line.trim().split(/\s+/)[0]];
      if (extra) await extra(line.trim().split(/\s+/).slice(1), state, io);
      else await runLine(line, state, io);
    } catch (e) {
      output.write(`nsh: ${e.stack || e}\n`);
    }
    busy = false;
    if (state.exit !== undefined) { rl.close(); return; }
    input.resume(); // node's stream machinery restarts the read itself
    show();
  });
  rl.on('close', () => onExit?.(state.exit ?? 0));
  show();
  return rl;
}

module.exports = { runLine, newState, interactive, BUILTINS };
