'use strict';
// Boot-phase lines: the one format the host parses to build a boot timeline.
// Times are the kernel's clock: CLOCK_MONOTONIC, which Node's hrtime reads and
// which equals CLOCK_BOOTTIME in a guest that never suspends.

const PHASE_LINE = /^nodeos: (?:phase ([a-z-]+)|(ready)) ([0-9]+\.[0-9]{3})ms/;

function kernelClockMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

function formatPhase(name, ms, extra = '') {
  if (!/^[a-z-]+$/.test(name)) throw new TypeError(`phase name '${name}' must match [a-z-]+`);
  const head = name === 'ready' ? 'nodeos: ready' : `nodeos: phase ${name}`;
  return `${head} ${ms.toFixed(3)}ms${extra ? ' ' + extra : ''}`;
}

function parsePhaseLine(line) {
  const m = PHASE_LINE.exec(line);
  if (!m) return null;
  return { name: m[1] || m[2], ms: Number(m[3]) };
}

// The kernel log record "Run /sbin/init as init process" marks the handover.
// /dev/kmsg records look like "6,312,301220,-;Run /sbin/init as init process".
// The last such record wins: when one init fails to start the kernel tries the
// next and logs "Run" again. It is also near the end of the ~200 records, and
// each record looked at costs under TCG.
function handoverFromKmsg(records) {
  for (let i = records.length - 1; i >= 0; i--) {
    const record = records[i];
    const semi = record.indexOf(';');
    if (semi < 0) continue;
    if (!/^Run \S+ as init process/.test(record.slice(semi + 1))) continue;
    const fields = record.slice(0, semi).split(',');
    const micros = Number(fields[2]);
    if (Number.isFinite(micros)) return micros / 1000;
  }
  return null;
}

module.exports = { PHASE_LINE, kernelClockMs, formatPhase, parsePhaseLine, handoverFromKmsg };
