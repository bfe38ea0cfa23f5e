'use strict';
// The host's side of the tunnel, for boot.test.js: run by images/qemu-boot
// --then once the guest is ready. It speaks the tunnel protocol over
// NODEOS_TUNNEL_SOCKET and drives the guest through NODEOS_AGENT_SOCKET:
// a request to a guest port (a service on 127.0.0.1:8080), and a guest
// process's request to its "registry" listener, answered by a fake server
// here. Prints one line per check; exits 1 on the first failure.
const net = require('node:net');
const http = require('node:http');
const { once } = require('node:events');
const { TYPES, encodeFrame, FrameDecoder } = require('../rootfs/lib/nodeos/tunnel-frames');

const fail = (message) => { console.error(`tunnel-host: ${message}`); process.exit(1); };
setTimeout(() => fail('timed out after 120 s'), 120_000).unref();

function agentClient(path) {
  const sock = net.connect(path);
  let buffer = '';
  let nextId = 1000;
  const waiting = new Map();
  sock.on('data', (c) => {
    buffer += c;
    for (let nl; (nl = buffer.indexOf('\n')) >= 0;) {
      const frame = JSON.parse(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      waiting.get(frame.id)?.(frame);
    }
  });
  return (op, fields = {}) => new Promise((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, (f) => (f.ok ? resolve(f.result) : reject(new Error(`${op}: ${JSON.stringify(f.error)}`))));
    sock.write(JSON.stringify({ id, op, ...fields }) + '\n');
  });
}

async function main() {
  const registry = http.createServer((req, res) => res.end(`registry on the host saw ${req.method} ${req.url}`));
  registry.listen(0, '127.0.0.1');
  await once(registry, 'listening');

  const tunnel = net.connect(process.env.NODEOS_TUNNEL_SOCKET);
  await once(tunnel, 'connect');
  const decoder = new FrameDecoder();
  const send = (type, id, payload) => tunnel.write(encodeFrame(type, id, payload));
  const relays = new Map(); // id -> { socket, received: [] }
  let hello = null;
  const helloSeen = new Promise((resolve) => { hello = resolve; });
  const opened = new Map();
  // The host's side of one connection, without flow control beyond ACKing all.
  const relay = (id, socket) => {
    relays.set(id, socket);
    socket.on('data', (c) => send(TYPES.DATA, id, c));
    socket.on('end', () => send(TYPES.END, id));
    socket.on('error', (e) => send(TYPES.CLOSE, id, e.code));
  };
  tunnel.on('data', (chunk) => {
    for (const f of decoder.push(chunk)) {
      if (f.error) fail(f.error);
      if (f.type === TYPES.HELLO) hello(JSON.parse(f.payload));
      else if (f.type === TYPES.OPEN) {
        const { name } = JSON.parse(f.payload);
        if (name !== 'registry') { send(TYPES.REFUSED, f.id, 'unknown listener'); continue; }
        const socket = net.connect({ port: registry.address().port, host: '127.0.0.1', allowHalfOpen: true }, () => send(TYPES.OPENED, f.id));
        relay(f.id, socket);
      } else if (f.type === TYPES.OPENED || f.type === TYPES.REFUSED) opened.get(f.id)?.(f);
      else if (f.type === TYPES.DATA) {
        relays.get(f.id)?.write(f.payload);
        const ack = Buffer.alloc(4); ack.writeUInt32BE(f.payload.length); send(TYPES.ACK, f.id, ack);
      } else if (f.type === TYPES.END) relays.get(f.id)?.end();
      else if (f.type === TYPES.CLOSE) { relays.get(f.id)?.destroy(); relays.delete(f.id); }
    }
  });
  send(TYPES.HELLO, 0, JSON.stringify({ version: 1 }));
  const answer = await helloSeen;
  if (JSON.stringify(answer) !== JSON.stringify({ version: 1, listeners: [{ name: 'registry', port: 4873 }] })) fail(`HELLO answer ${JSON.stringify(answer)}`);
  console.log(`tunnel-host: HELLO ${JSON.stringify(answer)}`);

  const agent = agentClient(process.env.NODEOS_AGENT_SOCKET);
  const { listening } = await agent('listening', { port: 8080 });
  if (!listening) fail('the guest service does not listen on 8080');
  const { services } = await agent('services');
  if (services[0]?.name !== 'guestweb' || services[0].state !== 'running') fail(`services ${JSON.stringify(services)}`);
  console.log(`tunnel-host: services ${JSON.stringify(services)}`);

  // Host -> guest: an HTTP request to the guest's 127.0.0.1:8080.
  const local = net.createServer({ allowHalfOpen: true }, (socket) => {
    const id = 2;
    opened.set(id, (f) => {
      if (f.type !== TYPES.OPENED) fail(`OPEN 8080 refused: ${f.payload}`);
      relay(id, socket);
      socket.resume();
    });
    socket.pause();
    send(TYPES.OPEN, id, JSON.stringify({ port: 8080 }));
  });
  local.listen(0, '127.0.0.1');
  await once(local, 'listening');
  const body = await new Promise((resolve, reject) => http.get({ port: local.address().port, host: '127.0.0.1', path: '/x', agent: false }, (res) => {
    let text = ''; res.on('data', (c) => { text += c; }); res.on('end', () => resolve(text));
  }).on('error', reject));
  if (body !== 'guest service says hi to GET /x') fail(`guest port answered ${JSON.stringify(body)}`);
  console.log(`tunnel-host: host -> guest: ${body}`);

  // Guest -> host: a guest process asks its registry listener.
  const script = "require('http').get('http://127.0.0.1:4873/-/ping', (r) => { let t = ''; r.on('data', (c) => t += c); r.on('end', () => process.stdout.write(r.statusCode + ' ' + t)); }).on('error', (e) => { console.error(e.message); process.exit(1); })";
  const run = await agent('exec', { argv: ['node', '-e', script], timeoutMs: 60_000 });
  if (run.status !== 0 || run.stdout !== '200 registry on the host saw GET /-/ping') fail(`guest -> host: ${JSON.stringify(run)}`);
  console.log(`tunnel-host: guest -> host: ${run.stdout}`);
  console.log('tunnel-host: ok');
  process.exit(0);
}

main().catch((e) => fail(e.stack));
