'use strict';
// The kernel log for the host. The image boots with `quiet`, so a warning
// (`WARNING: CPU: …`, an OOM kill) never reaches the console the host reads;
// every record at warning level or worse goes to it as an agent event instead,
// from the start of the kernel's ring buffer so that early boot counts too.

const fs = require('fs');

const WARNING = 4;
const MAX_TEXT = 1024;
const MAX_PER_SECOND = 100;

// One /dev/kmsg record: "PRIO,SEQ,TS_US,FLAGS[,…];TEXT\n", then optionally
// continuation lines (" KEY=VALUE", the device a driver logged for), dropped.
function parseRecord(record) {
  const m = /^(\d+),(\d+),(\d+),([^,;]*)[^;]*;/.exec(record);
  if (!m) return null;
  const start = m[0].length;
  const end = record.indexOf('\n', start);
  const prio = Number(m[1]);
  return { level: prio & 7, facility: prio >> 3, seq: Number(m[2]), tsUs: Number(m[3]), flags: m[4], text: record.slice(start, end < 0 ? record.length : end) };
}

// The event a record becomes, or null for one below warning level.
function kmsgEvent(record) {
  const r = parseRecord(record);
  if (!r || r.level > WARNING) return null;
  return { seq: r.seq, level: r.level, text: r.text.length > MAX_TEXT ? r.text.slice(0, MAX_TEXT) : r.text };
}

// Returns push(record): sends a `kmsg` event per record worth one, at most
// maxPerSecond a second; past that it counts what it drops and says so in a
// `kmsg-dropped` event once a second while dropping. A timer runs only while
// there is a count to report: an idle machine stays idle.
function createForwarder({ send, now = Date.now, setTimer = setTimeout, clearTimer = clearTimeout, maxPerSecond = MAX_PER_SECOND }) {
  let windowStart = -Infinity;
  let sent = 0;
  let dropped = 0;
  let timer = null;
  const report = () => {
    if (timer) { clearTimer(timer); timer = null; }
    if (dropped) { send('kmsg-dropped', { count: dropped }); dropped = 0; }
  };
  return (record) => {
    const event = kmsgEvent(record);
    if (!event) return;
    const t = now();
    if (t - windowStart >= 1000) {
      // The drops of the last second are reported before what follows them.
      report();
      windowStart = t;
      sent = 0;
    }
    if (sent < maxPerSecond) {
      sent++;
      send('kmsg', event);
      return;
    }
    dropped++;
    if (!timer) timer = setTimer(report, 1000);
  };
}

// Reads /dev/kmsg for as long as init runs. The backlog comes in one call
// of the addon (a trip to libuv's pool per record costs ~0.5 ms under TCG,
// and a boot leaves ~200); after that, one blocking read at a time in the
// pool, which costs nothing while the kernel is quiet.
function startKernelLog({ addon, send, onError }) {
  const fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY);
  const push = createForwarder({ send });
  for (const record of addon.readKmsg(fd)) push(record);
  const buffer = Buffer.alloc(16 * 1024);
  let failing = false;
  const read = () => fs.read(fd, buffer, 0, buffer.length, null, (err, n) => {
    // EPIPE: the kernel overwrote records before they were read; the next
    // read gives the oldest one left.
    if (err?.code === 'EPIPE' || err?.code === 'EINTR') { read(); return; }
    // Anything else is said once, and retried slowly rather than spun on.
    if (err) { if (!failing) onError(err); failing = true; setTimeout(read, 5000); return; }
    failing = false;
    if (n > 0) push(buffer.toString('utf8', 0, n));
    if (n === 0) setTimeout(read, 1000); else read();
  });
  read();
  return fd;
}

module.exports = { parseRecord, kmsgEvent, createForwarder, startKernelLog, WARNING, MAX_TEXT, MAX_PER_SECOND };
