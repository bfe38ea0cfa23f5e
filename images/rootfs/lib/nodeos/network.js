'use strict';
// Loopback always; eth0, when there is one, from nodeos.net or QEMU's
// user-mode defaults; the configuration's networks on the NICs whose MAC
// they name (NIC names follow PCI order, which the host does not promise);
// and /etc/hosts.

const fs = require('fs');
const { safeReaddir } = require('./mounts');

const USER_MODE_NET = { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' };

// networks: [{ mac, address, prefix }]; hosts: { name: address } (config.js).
function configureNetwork({ out, addon, net, networks = [], hosts = {}, hostname }) {
  fs.writeFileSync('/etc/hosts', hostsFile({ hostname, hosts }));
  addon.ifup('lo', '127.0.0.1', '255.0.0.0');
  const byMac = networks.length ? interfacesByMac() : new Map();
  // A NIC a network names is that network's, even when it came up as eth0.
  const claimed = new Set(networks.map((n) => byMac.get(n.mac)).filter(Boolean));
  if (fs.existsSync('/sys/class/net/eth0') && !claimed.has('eth0')) {
    const { address, prefix, gateway } = net ?? USER_MODE_NET;
    addon.ifup('eth0', address, prefixToMask(prefix), gateway);
    fs.writeFileSync('/etc/resolv.conf', 'nameserver 10.0.2.3\n');
  }
  networks.forEach((network, i) => {
    const name = byMac.get(network.mac);
    if (!name) return out.error('network', `networks[${i}]: no interface has MAC ${network.mac} (found: ${[...byMac.keys()].join(', ') || 'none'})`);
    try {
      addon.ifup(name, network.address, prefixToMask(network.prefix));
    } catch (e) {
      out.error('network', `networks[${i}]: ${name} (${network.mac}) ${network.address}/${network.prefix}: ${e.message}`);
    }
  });
}

// MAC (lowercase) -> interface name, from /sys/class/net/*/address.
function interfacesByMac() {
  const found = new Map();
  for (const name of safeReaddir('/sys/class/net')) {
    try { found.set(fs.readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim().toLowerCase(), name); } catch { /* gone */ }
  }
  return found;
}

// The machine's own name is 127.0.1.1, unless hosts gives it an address.
function hostsFile({ hostname, hosts }) {
  const lines = ['127.0.0.1 localhost'];
  if (!Object.hasOwn(hosts, hostname)) lines.push(`127.0.1.1 ${hostname}`);
  for (const [name, address] of Object.entries(hosts)) lines.push(`${address} ${name}`);
  return lines.join('\n') + '\n';
}

function prefixToMask(prefix) {
  const bits = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

module.exports = { configureNetwork, prefixToMask, hostsFile };
