'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { LineDecoder, encode } = require('../rootfs/lib/nodeos/protocol');
const { createAgent } = require('../rootfs/lib/nodeos/agent');

test('frames split across chunks are joined, several per chunk are split', () => {
  const d = new LineDecoder();
  assert.deepEqual(d.push(Buffer.from('{"id":1,')), []);
  const out = d.push(Buffer.from('"op":"ping"}\n{"id":2}\n{"id"'));
  assert.deepEqual(out.map((x) => x.message), [{ id: 1, op: 'ping' }, { id: 2 }]);
  assert.deepEqual(d.push(Buffer.from(':3}\r\n')).map((x) => x.message), [{ id: 3 }]);
});

test('bad frames are errors, not crashes', () => {
  const d = new LineDecoder();
  const out = d.push(Buffer.from('not json\n[1,2]\n\n"str"\n'));
  assert.equal(out[0].error.code, 'EPROTO');
  assert.match(out[0].error.message, /^not JSON/);
  assert.match(out[1].error.message, /must be a JSON object/);
  assert.equal(out[2].empty, true);
  assert.match(out[3].error.message, /must be a JSON object/);
});

test('an over-long line is discarded and the stream recovers', () => {
  const d = new LineDecoder({ maxLine: 16 });
  const out = d.push(Buffer.from('{"id":1,"pad":"' + 'x'.repeat(40)));
  assert.equal(out[0].error.code, 'EPROTO');
  assert.deepEqual(d.push(Buffer.from('xxxx"}\n{"id":9}\n')).map((x) => x.message ?? x.error?.code), [{ id: 9 }]);
});

test('random bytes never throw', () => {
  const d = new LineDecoder({ maxLine: 1024 });
  for (let i = 0; i < 2000; i++) {
    const bytes = Buffer.from(Array.from({ length: 1 + (i % 97) }, () => Math.floor(Math.random() * 256)));
    for (const item of d.push(bytes)) assert.ok(item.message || item.error || item.empty);
  }
});

function agentWith(ops) {
  const sent = [];
  const agent = createAgent({ ops, send: (b) => sent.push(JSON.parse(b.toString())) });
  return { agent, sent };
}

test('the agent answers every request with its id', async () => {
  const { agent, sent } = agentWith({ ping: async () => ({}), echo: async (m) => ({ back: m.value }) });
  agent.receive(encode({ id: 1, op: 'ping' }));
  agent.receive(encode({ id: 2, op: 'echo', value: 'x' }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [{ id: 1, ok: true, result: {} }, { id: 2, ok: true, result: { back: 'x' } }]);
});

test('unknown ops, missing ids and failing ops are answered with a code', async () => {
  const { agent, sent } = agentWith({ boom: async () => { throw Object.assign(new Error('no such file'), { code: 'ENOENT' }); } });
  agent.receive(Buffer.from('{"id":1,"op":"nope"}\n{"op":"boom"}\n{"id":3,"op":"boom"}\n{"id":4,"op":"constructor"}\n'));
  await new Promise((r) => setImmediate(r));
  sent.sort((a, b) => (a.id ?? 0) - (b.id ?? 0)); // answers may come in any order
  const [missing, ...rest] = sent;
  sent.splice(0, sent.length, rest[0], missing, rest[1], rest[2]);
  assert.equal(sent[0].error.code, 'EINVAL');
  assert.match(sent[0].error.message, /^op: unknown operation "nope"/);
  assert.deepEqual(sent[1], { id: null, ok: false, error: { code: 'EINVAL', message: 'id: expected an integer' } });
  assert.deepEqual(sent[2], { id: 3, ok: false, error: { code: 'ENOENT', message: 'no such file' } });
  assert.equal(sent[3].error.code, 'EINVAL');
});
