'use strict';
// Faults on request, for the testbed's reliability suite. Loaded only when
// the kernel command line says nodeos.test.faults=1, so a normal boot has no
// way to reach them. Each one breaks the guest the way real guests break:
// an agent that goes away, a PID 1 that stops answering, a channel flood.

const { RequestError, field } = require('./agent');

const KINDS = ['close-port', 'hang', 'flood'];

function makeFaultOps({ port, log, busyWait = spin }) {
  return {
    async testFault(message) {
      const kind = field.required(message, 'kind', 'string');
      const afterMs = field.optional(message, 'afterMs', 'integer', 0);
      if (!KINDS.includes(kind)) throw new RequestError('EINVAL', `kind: expected one of ${KINDS.join(', ')}`);
      if (afterMs < 0) throw new RequestError('EINVAL', 'afterMs: expected a non-negative integer');
      let run;
      if (kind === 'close-port') {
        run = () => { log('nodeos: test fault: the agent closes its port'); port.close(); };
      } else if (kind === 'hang') {
        const ms = field.required(message, 'ms', 'integer');
        if (ms <= 0) throw new RequestError('EINVAL', 'ms: expected a positive integer');
        run = () => { log(`nodeos: test fault: init stops answering for ${ms} ms`); busyWait(ms); };
      } else {
        const bytes = field.required(message, 'bytes', 'integer');
        if (bytes <= 0) throw new RequestError('EINVAL', 'bytes: expected a positive integer');
        run = () => { log(`nodeos: test fault: ${bytes} bytes on the agent channel without a line end`); flood(port, bytes); };
      }
      // Answer first, then break: the host learns the fault was armed.
      setTimeout(run, afterMs);
      return { kind, afterMs };
    },
  };
}

// One shared 1 MiB buffer queued again and again: the flood costs the guest
// no memory, whatever its size.
function flood(port, bytes) {
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    port.send(n === chunk.length ? chunk : chunk.subarray(0, n));
    left -= n;
  }
  port.send(Buffer.from('\n'));
}

// A synchronous busy loop: the event loop, the agent and the console all stop.
function spin(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) { /* hung on purpose */ }
}

module.exports = { makeFaultOps, KINDS };
