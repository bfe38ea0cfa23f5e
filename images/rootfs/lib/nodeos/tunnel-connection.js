'use strict';
// One tunnel connection: a local TCP socket on one side, frames to the host
// on the other. Flow control both ways: at most WINDOW bytes of DATA sent
// and not acknowledged; a full window pauses the socket, not the port.

const { TYPES, MAX_PAYLOAD } = require('./tunnel-frames');

const WINDOW = 262144;

// send(type, id, payload) writes a frame; forget() tells the tunnel the id is free.
function createConnection({ id, socket, send, forget }) {
  let credit = WINDOW; // what we may still send
  const held = []; // read from the socket, waiting for credit
  let readEnded = false; // the socket ended: END once held is out
  let endSent = false;
  let endReceived = false;
  let finished = false; // our socket.end() is flushed
  let unacked = 0; // DATA written to the socket and not acknowledged yet
  let inFlight = 0; // DATA handed to socket.write and not written yet
  let ackScheduled = false;
  let open = false;
  let gone = false;

  const flush = () => {
    while (held.length && credit > 0) {
      let chunk = held[0];
      const n = Math.min(chunk.length, credit, MAX_PAYLOAD);
      if (n < chunk.length) { held[0] = chunk.subarray(n); chunk = chunk.subarray(0, n); } else held.shift();
      credit -= n;
      send(TYPES.DATA, id, chunk);
    }
    if (held.length) { socket.pause(); return; }
    if (readEnded && !endSent) { endSent = true; send(TYPES.END, id); }
    if (open && !readEnded) socket.resume();
    maybeDone();
  };

  const maybeDone = () => {
    if (endSent && endReceived && finished && inFlight === 0) close(null, true);
  };

  const ack = () => {
    ackScheduled = false;
    if (gone || unacked === 0) return;
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(unacked);
    unacked = 0;
    send(TYPES.ACK, id, payload);
    maybeDone();
  };

  // Tells the host (unless told by it) and lets the socket go.
  const close = (reason, tell) => {
    if (gone) return;
    gone = true;
    held.length = 0;
    if (tell) send(TYPES.CLOSE, id, reason ?? '');
    socket.destroy();
    forget(id);
  };

  socket.on('data', (chunk) => { held.push(chunk); flush(); });
  socket.on('end', () => { readEnded = true; flush(); });
  socket.on('finish', () => { finished = true; maybeDone(); });
  socket.on('error', (e) => close(e.code ?? e.message, true));
  // Closed without an error only once both directions ended: what is still
  // held goes out first (maybeDone). Anything else lost the connection.
  socket.on('close', (hadError) => { if (!hadError && !(readEnded && finished)) close('closed', true); });

  return {
    id,
    // The other side accepted: bytes may flow.
    opened() { open = true; flush(); },
    data(payload) {
      if (endReceived) return close('DATA after END', true);
      inFlight += payload.length;
      if (inFlight + unacked > WINDOW) return close(`the host sent more than the window of ${WINDOW} bytes`, true);
      socket.write(payload, (err) => {
        if (err || gone) return;
        inFlight -= payload.length;
        unacked += payload.length;
        if (!ackScheduled) { ackScheduled = true; setImmediate(ack); }
      });
    },
    acked(bytes) { credit = Math.min(WINDOW, credit + bytes); flush(); },
    ended() { if (!endReceived) { endReceived = true; socket.end(); } },
    close,
  };
}

module.exports = { createConnection, WINDOW };
