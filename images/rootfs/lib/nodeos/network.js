'use strict';
// Loopback always; eth0, when there is one, from nodeos.net or QEMU's
// user-mode defaults.

const fs = require('fs');

const USER_MODE_NET = { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' };

function configureNetwork({ addon, net }) {
  addon.ifup('lo', '127.0.0.1', '255.0.0.0');
  if (!fs.existsSync('/sys/class/net/eth0')) return;
  const { address, prefix, gateway } = net ?? USER_MODE_NET;
  addon.ifup('eth0', address, prefixToMask(prefix), gateway);
  fs.writeFileSync('/etc/resolv.conf', 'nameserver 10.0.2.3\n');
}

function prefixToMask(prefix) {
  const bits = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

module.exports = { configureNetwork, prefixToMask };
