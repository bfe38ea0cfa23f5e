'use strict';
// A virtio serial port as a byte channel: found by name, with writes queued
// off the main thread (they block while no host is connected) and reads that
// poll while no host is connected. The agent and the tunnel each open one.

const fs = require('fs');
const { safeReaddir } = require('./mounts');

// The device of the port the host named `name` (/dev/vportNpM), or null.
function findPort(name) {
  for (const port of safeReaddir('/sys/class/virtio-ports')) {
    try {
      if (fs.readFileSync(`/sys/class/virtio-ports/${port}/name`, 'utf8').trim() === name) return `/dev/${port}`;
    } catch { /* unnamed port */ }
  }
  return null;
}

function openPort(device, nonBlocking) {
  const fd = fs.openSync(device, fs.constants.O_RDWR | (nonBlocking ? fs.constants.O_NONBLOCK : 0));
  const queue = [];
  let writing = false;
  const drained = [];
  const pump = () => {
    if (writing) return;
    // Nothing left to write, or nowhere to write it: whoever waits may go on.
    if (port.closed) queue.length = 0;
    if (queue.length === 0) { for (const done of drained.splice(0)) done(); return; }
    writing = true;
    const chunk = queue.shift();
    fs.write(fd, chunk, 0, chunk.length, null, (err, written) => {
      writing = false;
      if (err?.code === 'EAGAIN') { queue.unshift(chunk); setTimeout(pump, 5); return; }
      if (!err && written < chunk.length) queue.unshift(chunk.subarray(written));
      pump();
    });
  };
  const port = {
    fd,
    closed: false,
    send(chunk) { queue.push(chunk); pump(); },
    queued: () => queue.length,
    // Forgets what is queued and not yet handed to the kernel (a write in
    // progress cannot be called back): for a host that is gone.
    discard() { queue.length = 0; pump(); },
    // Calls back once everything queued so far is written (or the port closed).
    drain(done) { drained.push(done); pump(); },
    close() { port.closed = true; queue.length = 0; try { fs.closeSync(fd); } catch { /* already closed */ } },
  };
  return port;
}

// Reads the port for good, handing each chunk to receive. virtio_console
// answers a read at once with 0 bytes while no host is connected: then it
// polls, and calls hostGone once per such stretch after data had come.
function readPort(port, { receive, hostGone = () => {}, onError }) {
  const buffer = Buffer.alloc(64 * 1024);
  let idle = 0;
  let connected = false;
  const read = () => port.closed || fs.read(port.fd, buffer, 0, buffer.length, null, (err, n) => {
    if (port.closed) return;
    if (err?.code === 'EAGAIN') { idle++; setTimeout(read, idle < 200 ? 5 : 20); return; }
    if (err) { onError(err); setTimeout(read, 500); return; }
    if (n === 0) {
      if (connected) { connected = false; hostGone(); }
      idle++;
      setTimeout(read, idle < 200 ? 10 : 100);
      return;
    }
    idle = 0;
    connected = true;
    receive(Buffer.from(buffer.subarray(0, n)));
    read();
  });
  read();
}

module.exports = { findPort, openPort, readPort };
