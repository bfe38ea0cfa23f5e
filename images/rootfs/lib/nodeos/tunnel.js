'use strict';
// The tunnel's protocol, over any byte channel (images/PROTOCOL.md,
// "Tunnel"): TCP connections between the host and guest ports, multiplexed
// in frames. The virtio port is tunnel-port.js; this file is tested without one.

const { TYPES, encodeFrame, FrameDecoder } = require('./tunnel-frames');
const { createConnection } = require('./tunnel-connection');

const VERSION = 1;
const MAX_CONNECTIONS = 256;

// send(buffer) writes to the host; discard() drops what is queued for a
// host that is gone; listeners: [{ name, port }] the configuration asks for;
// warn(message) says what went wrong (rate-limited here); net: node's net.
function createTunnel({ send, discard = () => {}, listeners = [], warn, net = require('net') }) {
  const decoder = new FrameDecoder();
  const connections = new Map(); // id -> connection
  let hostReady = false; // a host said HELLO and has not gone since
  let nextGuestId = 1;
  let lastWarning = -Infinity;
  const servers = [];

  const frame = (type, id, payload) => send(encodeFrame(type, id, payload));
  const warnOnce = (message) => {
    const now = Date.now();
    if (now - lastWarning < 1000) return;
    lastWarning = now;
    warn(message);
  };
  const forget = (id) => connections.delete(id);
  const dropAll = (tell, reason) => {
    for (const c of [...connections.values()]) c.close(reason, tell);
    connections.clear();
  };
  // Bad bytes from the host: every connection goes, and the stream is read
  // again from the next HELLO.
  const protocolError = (message) => {
    warnOnce(`protocol error, every connection reset: ${message}`);
    dropAll(true, `tunnel reset: ${message}`);
    hostReady = false;
    decoder.resync();
  };
  const json = (payload) => {
    try {
      const value = JSON.parse(payload.toString('utf8'));
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
    } catch { /* below */ }
    return null;
  };
  const guestId = () => {
    for (;;) {
      const id = nextGuestId;
      nextGuestId = nextGuestId >= 0xfffffffd ? 1 : nextGuestId + 2;
      if (!connections.has(id)) return id;
    }
  };

  const handlers = {
    [TYPES.HELLO](id, payload) {
      const hello = json(payload);
      if (!hello) return protocolError('HELLO: the payload is not a JSON object');
      // A new host: whatever was under way belonged to the one before.
      dropAll(false);
      discard();
      hostReady = true;
      frame(TYPES.HELLO, 0, JSON.stringify({ version: VERSION, listeners: listeners.map(({ name, port }) => ({ name, port })) }));
    },
    [TYPES.OPEN](id, payload) {
      const open = json(payload);
      if (!open) return protocolError(`OPEN ${id}: the payload is not a JSON object`);
      if (id < 2 || id % 2 !== 0) return protocolError(`OPEN ${id}: the host's connection ids are even and at least 2`);
      if (connections.has(id)) return protocolError(`OPEN ${id}: the id is in use`);
      const refuse = (reason) => frame(TYPES.REFUSED, id, reason);
      if (!hostReady) return refuse('EPROTO: no HELLO yet');
      if (!Number.isInteger(open.port) || open.port < 1 || open.port > 65535) return refuse('EINVAL: port: expected an integer 1..65535');
      if (connections.size >= MAX_CONNECTIONS) return refuse(`EMFILE: at most ${MAX_CONNECTIONS} tunnel connections`);
      const socket = net.connect({ host: '127.0.0.1', port: open.port, allowHalfOpen: true });
      // Until it connects, a failure is a refusal, not a CLOSE.
      let pending = { close() { socket.destroy(); if (connections.get(id) === pending) forget(id); } };
      connections.set(id, pending);
      const failed = (e) => { if (connections.get(id) === pending) { forget(id); refuse(e.code ?? e.message); } };
      socket.once('error', failed);
      socket.once('connect', () => {
        socket.off('error', failed);
        if (connections.get(id) !== pending) { socket.destroy(); return; }
        pending = null;
        const connection = createConnection({ id, socket, send: frame, forget });
        connections.set(id, connection);
        frame(TYPES.OPENED, id);
        connection.opened();
      });
    },
    [TYPES.OPENED](id) { if (id % 2 === 1) connections.get(id)?.opened(); },
    [TYPES.REFUSED](id) { if (id % 2 === 1) connections.get(id)?.close(null, false); },
    [TYPES.DATA](id, payload) {
      const connection = connections.get(id);
      if (connection?.data) connection.data(payload);
      else if (!connection) frame(TYPES.CLOSE, id, 'unknown connection');
    },
    [TYPES.ACK](id, payload) {
      if (payload.length !== 4) return protocolError(`ACK ${id}: the payload is ${payload.length} bytes, not 4`);
      connections.get(id)?.acked?.(payload.readUInt32BE(0));
    },
    [TYPES.END](id) { connections.get(id)?.ended?.(); },
    [TYPES.CLOSE](id) { connections.get(id)?.close(null, false); },
  };

  // A guest process connected to a listener: the host is asked to open it.
  const accept = (name, socket) => {
    if (!hostReady || connections.size >= MAX_CONNECTIONS) { socket.destroy(); return; }
    const id = guestId();
    const connection = createConnection({ id, socket, send: frame, forget });
    connections.set(id, connection);
    frame(TYPES.OPEN, id, JSON.stringify({ name }));
  };

  return {
    receive(chunk) {
      for (const item of decoder.push(chunk)) {
        if (item.error) { protocolError(item.error); continue; }
        const handler = handlers[item.type];
        if (handler) handler(item.id, item.payload); // unknown types are ignored
      }
    },
    // The host went away: its connections with it, until the next HELLO.
    hostGone() {
      hostReady = false;
      dropAll(false);
      discard();
      decoder.reset();
    },
    // Opens the configured listeners on 127.0.0.1; onError(listener, error).
    listen(onError) {
      for (const listener of listeners) {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => accept(listener.name, socket));
        server.on('error', (e) => onError(listener, e));
        server.listen(listener.port, '127.0.0.1');
        servers.push(server);
      }
    },
    close() { for (const s of servers) s.close(); dropAll(false); },
    connections: () => connections.size,
  };
}

module.exports = { createTunnel, MAX_CONNECTIONS, VERSION };
