'use strict';
// The other processes, as PID 1 sees them: the children node spawns, the
// orphans the kernel re-parents to init, and what is left at shutdown.

const fs = require('fs');
const { safeReaddir } = require('./mounts');

// The state and parent pid of /proc/PID/stat's text.
function parseStat(text) {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], ppid: fields[1] };
}

function isOrphanZombie(stat) { return stat.state === 'Z' && stat.ppid === '1'; }

// kthreads hang off pid 2
function isOtherProcess(pid, stat) { return stat.ppid !== '2' && pid !== '2' && stat.state !== 'Z'; }

function createProcesses({ addon }) {
  // Every child that node spawns is libuv's to wait for; the reaper only takes
  // orphans that were re-parented to PID 1. child_process costs ~300 ms to load
  // under TCG, so nothing before the ready line loads it unless it must.
  const spawned = new Set(); // pids that libuv owns; the reaper must not touch them
  let childProcessModule = null;
  function childProcess() {
    if (childProcessModule) return childProcessModule;
    childProcessModule = require('child_process');
    const { ChildProcess } = childProcessModule;
    const original = ChildProcess.prototype.spawn;
    ChildProcess.prototype.spawn = function spawn(...args) {
      const result = original.apply(this, args);
      if (this.pid) {
        spawned.add(this.pid);
        this.once('exit', () => spawned.delete(this.pid));
      }
      return result;
    };
    return childProcessModule;
  }

  function reapOrphans() {
    for (const entry of safeReaddir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === 1 || spawned.has(pid)) continue;
      let stat;
      try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
      if (isOrphanZombie(parseStat(stat))) {
        try { addon.waitpid(pid, true); } catch { /* raced with libuv */ }
      }
    }
  }

  return { childProcess, reapOrphans };
}

function otherProcesses() {
  const pids = [];
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry) || entry === '1') continue;
    try {
      if (isOtherProcess(entry, parseStat(fs.readFileSync(`/proc/${entry}/stat`, 'utf8')))) pids.push(Number(entry));
    } catch { /* gone */ }
  }
  return pids;
}

module.exports = { createProcesses, otherProcesses, parseStat, isOrphanZombie, isOtherProcess };
