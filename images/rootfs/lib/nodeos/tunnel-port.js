'use strict';
// The tunnel's transport: the virtio serial port named org.nodeos.tunnel
// (virtio-port.js), and the listeners the configuration asks for. The
// protocol is tunnel.js.

const { findPort, openPort, readPort } = require('./virtio-port');

// Returns null without the port: then the configured listeners are not
// opened either (nobody could answer them), and the console says so.
function openTunnel({ out, listeners = [] }) {
  const device = findPort('org.nodeos.tunnel');
  if (!device) {
    if (listeners.length) out.warning('tunnel', `no virtio port named org.nodeos.tunnel; not listening on ${listeners.map((l) => `${l.name} (${l.port})`).join(', ')}`);
    return null;
  }
  const { createTunnel } = require('./tunnel');
  const port = openPort(device, false);
  const tunnel = createTunnel({ send: port.send, discard: port.discard, listeners, warn: (message) => out.warning('tunnel', message) });
  tunnel.listen((listener, e) => out.error('tunnel', `listen on 127.0.0.1:${listener.port} (${listener.name}): ${e.message}`));
  readPort(port, {
    // A bug here must not stop the port's reads: the host's next HELLO starts afresh.
    receive: (chunk) => {
      try { tunnel.receive(chunk); } catch (e) { out.error('tunnel', e.stack || e.message); tunnel.hostGone(); }
    },
    hostGone: () => tunnel.hostGone(),
    onError: (e) => out.error('tunnel', `read: ${e.message}`),
  });
  return tunnel;
}

module.exports = { openTunnel };
