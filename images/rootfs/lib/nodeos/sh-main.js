'use strict';
// /bin/sh and /bin/nsh: `sh -c COMMAND [NAME [ARGS…]]`, `sh FILE`, or an
// interactive shell on a terminal (a user's login shell).

const fs = require('fs');
const { runLine, newState, interactive } = require('./nsh');

async function main(argv) {
  const state = newState();
  const io = { stdin: 0, stdout: 1, stderr: 2 };
  if (argv[0] === '-c') {
    if (argv.length < 2) { fs.writeSync(2, 'sh: -c: option requires an argument\n'); return 2; }
    return await runLine(argv[1], state, io);
  }
  if (argv.length && !argv[0].startsWith('-')) {
    let text;
    try { text = fs.readFileSync(argv[0], 'utf8'); } catch (e) { fs.writeSync(2, `sh: ${argv[0]}: ${e.code}\n`); return 127; }
    for (const line of text.split('\n')) {
      await runLine(line, state, io);
      if (state.exit !== undefined) return state.exit;
    }
    return state.status;
  }
  if (!require('tty').isatty(0)) {
    const text = fs.readFileSync(0, 'utf8');
    for (const line of text.split('\n')) {
      await runLine(line, state, io);
      if (state.exit !== undefined) return state.exit;
    }
    return state.status;
  }
  return await new Promise((resolve) => {
    interactive({ input: process.stdin, output: process.stdout, fd: 0, state, onExit: resolve });
  });
}

main(process.argv.slice(2)).then((status) => process.exit(status), (e) => {
  fs.writeSync(2, `sh: ${e.stack || e}\n`);
  process.exit(2);
});
