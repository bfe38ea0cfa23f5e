'use strict';
// Going down: stop every other process, unmount the homes, and power off or
// restart. Synchronous on purpose: nothing else may run in between.

const { otherProcesses } = require('./processes');

function sleepSync(ms) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }

// homes() gives the mounted homes and agent() the agent or null, read at the
// moment of shutdown: both come later in the boot than the signals that may
// ask for one.
function createShutdown({ out, addon, homes, agent }) {
  let shuttingDown = false;
  function shutdown(how, reason) {
    if (shuttingDown) return;
    shuttingDown = true;
    out.log(`nodeos: shutdown ${how} (${reason})`);
    try { agent()?.event('shutdown', { reason: how }); } catch { /* port gone */ }
    const a = addon;
    try { process.kill(-1, 'SIGTERM'); } catch { /* nothing else runs */ }
    const deadline = Date.now() + 3000;
    while (otherProcesses().length && Date.now() < deadline) sleepSync(20);
    const left = otherProcesses();
    if (left.length) {
      out.warning('shutdown', `${left.length} process(es) ignored SIGTERM, killing: ${left.join(' ')}`);
      try { process.kill(-1, 'SIGKILL'); } catch { /* gone */ }
      sleepSync(50);
    }
    a.sync();
    for (const target of homes().reverse()) {
      try {
        a.umount(target, 0);
      } catch (e) {
        out.warning('shutdown', `umount ${target}: ${e.code}; detaching`);
        try { a.umount(target, a.MNT_DETACH); } catch { /* nothing more to do */ }
      }
    }
    a.sync();
    out.log(how === 'restart' ? 'nodeos: rebooting' : 'nodeos: halted');
    try { a.reboot(how); } catch (e) { out.error('shutdown', e.message); }
  }
  return { shutdown, shuttingDown: () => shuttingDown };
}

module.exports = { createShutdown, sleepSync };
