'use strict';
// The serial console: init's lines on it, their seal, and the interactive
// shell offered on it after the ready line.

const fs = require('fs');
const { createSealer, hideSealKey, keyFromHex } = require('./seal');
const { RUN } = require('./mounts');

// One per init: the console is file descriptor 1, and the state below is
// about what was last written to it.
function createConsole() {
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

  return {
    log,
    writeConsole,
    error(step, message) { log(`nodeos: error ${step}: ${message}`); },
    warning(step, message) { log(`nodeos: warning ${step}: ${message}`); },
    sealWith(sealer) { seal = sealer; },
  };
}

// With a key on the command line: hide it from everyone but init before any
// other process exists, then seal every line of init's from the first, which
// names the boot (seal.js, images/PROTOCOL.md).
function startSealing({ out, addon, keyHex, bootId, cmdlineText }) {
  if (!keyHex) return;
  let hideError = null;
  try { hideKey(addon, cmdlineText, keyHex); } catch (e) { hideError = e; }
  out.sealWith(createSealer({ key: keyFromHex(keyHex), bootId, hmacHex: addon.hmacSha256Hex }));
  out.log(`nodeos: boot ${bootId}`);
  if (hideError) out.error('seal', `the key could not be hidden from users: ${hideError.message}`);
}

function hideKey(addon, cmdlineText, keyHex) {
  // The kernel logs its command line; only root may read the log now.
  fs.writeFileSync('/proc/sys/kernel/dmesg_restrict', '1');
  const copy = `${RUN}/cmdline`;
  fs.writeFileSync(copy, hideSealKey(cmdlineText, keyHex), { mode: 0o444 });
  addon.mount(copy, '/proc/cmdline', null, addon.MS_BIND);
}

// After the ready line: tty and the shell load only now.
function startConsoleShell({ out, addon, childProcess, rootEnv }) {
  const tty = require('tty');
  childProcess();
  const { interactive, newState } = require('./nsh');
  const fd = fs.openSync('/dev/ttyS0', 'r+');
  try { addon.setctty(fd); } catch (e) { out.warning('console', e.message); }
  const run = () => {
    const input = new tty.ReadStream(fd);
    const output = new tty.WriteStream(fd);
    const state = newState({ env: rootEnv(), cwd: '/root' });
    state.env.TERM = 'vt100';
    out.log('nodeos: console shell on ttyS0 (type help)');
    interactive({ input, output, fd, state, onExit: () => setTimeout(run, 100) });
  };
  run();
}

module.exports = { createConsole, startSealing, startConsoleShell };
