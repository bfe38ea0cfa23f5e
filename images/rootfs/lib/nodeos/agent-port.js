'use strict';
// The agent's transport: the virtio serial port named org.nodeos.agent
// (virtio-port.js). The protocol itself is agent.js, its operations
// agent-ops.js and agent-service-ops.js.

const { findPort, openPort, readPort } = require('./virtio-port');

// machine is what the agent's operations may use of init: { addon, users,
// account, hello, childProcess, shutdown, services }. Returns null without the port;
// else the agent, and listen(), which starts reading and says ready.
function openAgent({ out, machine, testFaults, bootId }) {
  const device = findPort('org.nodeos.agent');
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
  let ops = { ...makeOps({ ...machine, afterReplies }), ...require('./agent-service-ops').makeServiceOps(machine) };
  if (testFaults) {
    out.warning('agent', 'test faults are enabled (nodeos.test.faults): the agent obeys testFault requests');
    ops = { ...ops, ...require('./test-faults').makeFaultOps({ port, log: out.log, writeConsole: out.writeConsole }) };
  }
  const agent = createAgent({ ops, send: port.send, log: out.log });
  const listen = () => {
    readPort(port, { receive: (chunk) => agent.receive(chunk), onError: (e) => out.error('agent', `read: ${e.message}`) });
    agent.event('ready', { bootId });
  };
  return { agent, listen };
}

module.exports = { openAgent };
