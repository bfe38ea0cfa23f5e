'use strict';
// The tunnel's protocol (tunnel.js) against real TCP sockets on this host,
// with the test as the host: frames go through the real decoder both ways.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { once } = require('node:events');
const { createTunnel, MAX_CONNECTIONS } = require('../rootfs/lib/nodeos/tunnel');
const { TYPES, encodeFrame, FrameDecoder } = require('../rootfs/lib/nodeos/tunnel-frames');
const { WINDOW } = require('../rootfs/lib/nodeos/tunnel-connection');

const NAMES = Object.fromEntries(Object.entries(TYPES).map(([k, v]) => [v, k]));

// The host's side: frames the guest sent, and a way to wait for one.
function fakeHost({ listeners = [] } = {}) {
  const decoder = new FrameDecoder();
  const frames = [];
  const waiters = [];
  const warnings = [];
  const tunnel = createTunnel({
    listeners,
    warn: (m) => warnings.push(m),
    send: (buffer) => {
      for (const f of decoder.push(buffer)) {
        frames.push(f);
        for (const w of [...waiters]) if (w.match(f)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(f); }
      }
    },
  });
  const host = {
    tunnel, frames, warnings,
    send: (type, id, payload) => tunnel.receive(encodeFrame(type, id, payload)),
    json: (type, id, value) => host.send(type, id, JSON.stringify(value)),
    // The first frame (already sent or still to come) that matches.
    next(type, id, { after = 0 } = {}) {
      const match = (f) => f.type === type && (id === undefined || f.id === id);
      const seen = frames.slice(after).find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${NAMES[type]} ${id ?? ''} frame; got ${frames.map((f) => `${NAMES[f.type]} ${f.id}`).join(', ')}`)), 3000);
        waiters.push({ match, resolve: (f) => { clearTimeout(timer); resolve(f); } });
      });
    },
    data: (id) => Buffer.concat(frames.filter((f) => f.type === TYPES.DATA && f.id === id).map((f) => f.payload)),
    async hello() {
      const mark = frames.length;
      host.json(TYPES.HELLO, 0, { version: 1 });
      return JSON.parse((await host.next(TYPES.HELLO, 0, { after: mark })).payload);
    },
    ack: (id, n) => { const p = Buffer.alloc(4); p.writeUInt32BE(n); host.send(TYPES.ACK, id, p); },
  };
  return host;
}

async function echoServer() {
  const server = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('HELLO is answered with the listeners; an OPEN reaches a guest port, bytes flow both ways, ends half-close, then CLOSE', async (t) => {
  const server = await echoServer();
  t.after(() => server.close());
  const host = fakeHost({ listeners: [{ name: 'registry', port: 4873 }] });
  assert.deepEqual(await host.hello(), { version: 1, listeners: [{ name: 'registry', port: 4873 }] });
  host.json(TYPES.OPEN, 2, { port: server.address().port });
  await host.next(TYPES.OPENED, 2);
  host.send(TYPES.DATA, 2, 'hello ');
  host.send(TYPES.DATA, 2, 'tunnel');
  const ack = await host.next(TYPES.ACK, 2);
  assert.ok(ack.payload.readUInt32BE(0) > 0, 'written bytes are acknowledged');
  host.send(TYPES.END, 2);
  await host.next(TYPES.END, 2); // the echo server ended after our end
  host.ack(2, 12);
  await host.next(TYPES.CLOSE, 2);
  assert.equal(host.data(2).toString(), 'hello tunnel');
  assert.equal(host.tunnel.connections(), 0, 'the id is forgotten');
});

test('an OPEN to a closed port is REFUSED with the errno name; before HELLO it is refused too', async () => {
  const host = fakeHost();
  const port = await freePort();
  host.json(TYPES.OPEN, 2, { port });
  assert.match((await host.next(TYPES.REFUSED, 2)).payload.toString(), /^EPROTO: no HELLO/);
  await host.hello();
  host.json(TYPES.OPEN, 4, { port });
  assert.equal((await host.next(TYPES.REFUSED, 4)).payload.toString(), 'ECONNREFUSED');
  host.json(TYPES.OPEN, 6, { port: 70000 });
  assert.match((await host.next(TYPES.REFUSED, 6)).payload.toString(), /^EINVAL: port/);
});

test("a guest process's connection to a listener is OPENed to the host with an odd id; refused before HELLO", async (t) => {
  const port = await freePort();
  const host = fakeHost({ listeners: [{ name: 'registry', port }] });
  const errors = [];
  host.tunnel.listen((l, e) => errors.push(e));
  t.after(() => host.tunnel.close());
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(errors, []);
  // Before HELLO: accepted and dropped at once.
  const early = net.connect({ port, host: '127.0.0.1' });
  early.on('error', () => {});
  await once(early, 'close');
  assert.equal(host.frames.filter((f) => f.type === TYPES.OPEN).length, 0);

  await host.hello();
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.write('GET / HTTP/1.0\r\n\r\n');
  const open = await host.next(TYPES.OPEN);
  assert.equal(open.id % 2, 1);
  assert.deepEqual(JSON.parse(open.payload), { name: 'registry' });
  host.send(TYPES.OPENED, open.id);
  await host.next(TYPES.DATA, open.id);
  assert.equal(host.data(open.id).toString(), 'GET / HTTP/1.0\r\n\r\n');
  const got = [];
  client.on('data', (c) => got.push(c));
  host.send(TYPES.DATA, open.id, 'HTTP/1.0 200 OK\r\n\r\nhi');
  host.send(TYPES.END, open.id);
  await once(client, 'end');
  assert.equal(Buffer.concat(got).toString(), 'HTTP/1.0 200 OK\r\n\r\nhi');
  client.end();
  await host.next(TYPES.END, open.id);
  await host.next(TYPES.CLOSE, open.id);

  // A refusal closes the guest's socket.
  const refused = net.connect({ port, host: '127.0.0.1' });
  refused.on('error', () => {});
  const mark = host.frames.length;
  const second = await host.next(TYPES.OPEN, undefined, { after: mark });
  assert.notEqual(second.id, open.id);
  host.send(TYPES.REFUSED, second.id, 'ECONNREFUSED');
  await once(refused, 'close');
});

test('at most a window of DATA is unacknowledged; ACKs bring the rest', async (t) => {
  const total = WINDOW * 3 + 1234;
  const server = net.createServer((s) => s.end(Buffer.alloc(total, 7)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const host = fakeHost();
  await host.hello();
  host.json(TYPES.OPEN, 2, { port: server.address().port });
  await host.next(TYPES.OPENED, 2);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(host.data(2).length, WINDOW, 'stops at the window');
  assert.ok(host.frames.every((f) => f.payload.length <= 65536));
  let acked = WINDOW;
  host.ack(2, WINDOW);
  while (host.data(2).length < total) {
    await new Promise((r) => setTimeout(r, 20));
    const sent = host.data(2).length;
    assert.ok(sent - acked <= WINDOW);
    host.ack(2, sent - acked);
    acked = sent;
  }
  await host.next(TYPES.END, 2);
  assert.equal(host.data(2).length, total);
  host.send(TYPES.END, 2);
  await host.next(TYPES.CLOSE, 2);
});

test('bad frames warn, reset every connection and wait for a HELLO; unknown types are ignored; DATA for an unknown id is CLOSEd', async (t) => {
  const server = await echoServer();
  t.after(() => server.close());
  const host = fakeHost();
  await host.hello();
  host.send(99, 5, 'whatever');
  host.send(TYPES.DATA, 42, 'x');
  assert.equal((await host.next(TYPES.CLOSE, 42)).payload.toString(), 'unknown connection');
  host.json(TYPES.OPEN, 2, { port: server.address().port });
  await host.next(TYPES.OPENED, 2);
  // A length over 64 KiB: the framing is lost.
  const bad = Buffer.alloc(9); bad.writeUInt8(TYPES.DATA, 0); bad.writeUInt32BE(2, 1); bad.writeUInt32BE(70000, 5);
  host.tunnel.receive(Buffer.concat([bad, Buffer.alloc(100, 1)]));
  assert.match((await host.next(TYPES.CLOSE, 2)).payload.toString(), /^tunnel reset: .*70000 bytes/);
  assert.equal(host.warnings.length, 1);
  assert.match(host.warnings[0], /protocol error/);
  host.tunnel.receive(Buffer.from('garbage that is not a frame at all'));
  host.json(TYPES.OPEN, 4, { port: server.address().port }); // skipped: no HELLO since
  assert.equal(host.warnings.length, 1, 'at most one warning a second');
  assert.deepEqual((await host.hello()).version, 1, 'a HELLO brings it back');
  assert.ok(!host.frames.some((f) => f.id === 4));
  host.send(TYPES.HELLO, 0, 'not json');
  host.json(TYPES.OPEN, 6, { port: server.address().port });
  await host.hello();
  host.json(TYPES.OPEN, 8, { port: server.address().port });
  await host.next(TYPES.OPENED, 8);
  host.send(TYPES.OPEN, 3, '{"port":1}'); // an odd id is the guest's
  assert.match((await host.next(TYPES.CLOSE, 8)).payload.toString(), /even/);
});

test(`at most ${MAX_CONNECTIONS} connections; a new HELLO drops them all`, async (t) => {
  const server = net.createServer(() => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const host = fakeHost();
  await host.hello();
  const port = server.address().port;
  for (let i = 1; i <= MAX_CONNECTIONS; i++) host.json(TYPES.OPEN, 2 * i, { port });
  await host.next(TYPES.OPENED, 2 * MAX_CONNECTIONS);
  host.json(TYPES.OPEN, 2 * MAX_CONNECTIONS + 2, { port });
  assert.match((await host.next(TYPES.REFUSED, 2 * MAX_CONNECTIONS + 2)).payload.toString(), /^EMFILE/);
  assert.equal(host.tunnel.connections(), MAX_CONNECTIONS);
  await host.hello();
  assert.equal(host.tunnel.connections(), 0);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await new Promise((r) => server.getConnections((e, n) => r(n))), 0, "the guest's sockets are gone");
});
