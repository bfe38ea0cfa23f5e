'use strict';
// The agent's transport: the virtio serial port named org.nodeos.agent, with
// writes queued off the main thread and reads that poll while no host is
// connected. The protocol itself is agent.js, its operations agent-ops.js.

const fs = require('fs');
const { safeReaddir } = require('./mounts');

function findAgentPort() {
  for (const port of safeReaddir('/sys/class/virtio-ports')) {
    try {
      if (fs.readFileSync(`/sys/class/virtio-ports/${port}/name`, 'utf8').trim() === 'org.nodeos.agent') return `/dev/${port}`;
    } catch { /* unnamed port */ }
  }
  return null;
}

function openPort(device, nonBlocking) {
  const fd = fs.openSync(device, fs.constants.O_RDWR | (nonBlocking ? fs.constants.O_NONBLOCK : 0));
  // Writes block while no host is connected, so they queue off the main thread.
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
    // Calls back once everything queued so far is written (or the port closed).
    drain(done) { drained.push(done); pump(); },
    // Only test faults close the port: the agent then is gone for this boot.
    close() { port.closed = true; queue.length = 0; try { fs.closeSync(fd); } catch { /* already closed */ } },
  };
  return port;
}

// Reads the port for good, handing each chunk to receive.
function readPort(port, receive, out) {
  const buffer = Buffer.alloc(64 * 1024);
  let idle = 0;
  const read = () => port.closed || fs.read(port.fd, buffer, 0, buffer.length, null, (err, n) => {
    if (port.closed) return;
    if (err?.code === 'EAGAIN') { idle++; setTimeout(read, idle < 200 ? 5 : 20); return; }
    if (err) { out.error('agent', `read: ${err.message}`); setTimeout(read, 500); return; }
    // 0 means no host is connected (virtio_console returns at once): poll.
    if (n === 0) { idle++; setTimeout(read, idle < 200 ? 10 : 100); return; }
    idle = 0;
    receive(Buffer.from(buffer.subarray(0, n)));
    read();
  });
  read();
}

// machine is what the agent's operations may use of init: { addon, users,
// account, hello, childProcess, shutdown }. Returns null without the port;
// else the agent, and listen(), which starts reading and says ready.
function openAgent({ out, machine, testFaults, bootId }) {
  const device = findAgentPort();
  if (!device) { out.warning('agent', 'no virtio port named org.nodeos.agent; the agent is off'); return null; }
  const { createAgent } = require('./agent');
  const { makeOps } = require('./agent-ops');
  // With test faults the agent must be able to close its port, and a
  // blocking read in libuv's pool would pin the port open until data came:
  // then it reads without blocking and polls instead.
  const port = openPort(device, testFaults);
  // Runs `then` once the agent's answers are out, but within `ms` even if a
  // host stopped reading: a shutdown must never hang on the channel.
  const afterReplies = (then, ms = 2000) => {
    let ran = false;
    const once = () => { if (!ran) { ran = true; clearTimeout(timer); then(); } };
    const timer = setTimeout(once, ms);
    port.drain(once);
  };
  let ops = makeOps({ ...machine, afterReplies });
  if (testFaults) {
    out.warning('agent', 'test faults are enabled (nodeos.test.faults): the agent obeys testFault requests');
    ops = { ...ops, ...require('./test-faults').makeFaultOps({ port, log: out.log, writeConsole: out.writeConsole }) };
  }
  const agent = createAgent({ ops, send: port.send, log: out.log });
  const listen = () => {
    readPort(port, (chunk) => agent.receive(chunk), out);
    agent.event('ready', { bootId });
  };
  return { agent, listen };
}

module.exports = { openAgent };
