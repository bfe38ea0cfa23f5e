'use strict';
// The guest agent: requests in, answers out, over any byte channel. Framing
// lives in protocol.js and the operations in agent-ops.js; this file only
// validates and dispatches, so it is tested without a virtio port.

const { LineDecoder, encode } = require('./protocol');

class RequestError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

function createAgent({ ops, send, log = () => {} }) {
  const decoder = new LineDecoder();
  const reply = (frame) => send(encode(frame));

  async function handle(message) {
    const { id, op } = message;
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      return reply({ id: null, ok: false, error: { code: 'EINVAL', message: 'id: expected an integer' } });
    }
    const handler = typeof op === 'string' && Object.hasOwn(ops, op) ? ops[op] : null;
    if (!handler) {
      return reply({ id, ok: false, error: { code: 'EINVAL', message: `op: unknown operation ${JSON.stringify(op)} (known: ${Object.keys(ops).join(', ')})` } });
    }
    try {
      const result = await handler(message);
      reply({ id, ok: true, result: result ?? {} });
    } catch (e) {
      log(`agent: ${op} failed: ${e.message}`);
      reply({ id, ok: false, error: { code: typeof e.code === 'string' ? e.code : 'EIO', message: e.message } });
    }
  }

  return {
    receive(chunk) {
      for (const item of decoder.push(chunk)) {
        if (item.error) reply({ id: null, ok: false, error: item.error });
        else if (item.message) handle(item.message);
      }
    },
    event(name, fields = {}) { reply({ event: name, ...fields }); },
  };
}

// Field checks shared by the operations: each names the field at fault.
const field = {
  required(message, name, type) {
    if (!(name in message)) throw new RequestError('EINVAL', `${name}: is required`);
    return field.optional(message, name, type);
  },
  optional(message, name, type, fallback) {
    const value = message[name];
    if (value === undefined || value === null) return fallback;
    const ok = type === 'array' ? Array.isArray(value)
      : type === 'object' ? value !== null && typeof value === 'object' && !Array.isArray(value)
      : type === 'integer' ? Number.isInteger(value) : typeof value === type;
    if (!ok) throw new RequestError('EINVAL', `${name}: expected ${type === 'integer' ? 'an integer' : `a${/^[aeiou]/.test(type) ? 'n' : ''} ${type}`}`);
    return value;
  },
};

module.exports = { createAgent, RequestError, field };
