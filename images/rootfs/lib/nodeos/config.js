'use strict';
// The boot configuration (config volume JSON). Validation is strict and pure:
// it returns every problem with the path of the key at fault, so a machine
// either comes up exactly as specified or says precisely why not.

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
const SCRYPT_HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/;
const HOST_ALIAS = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const LISTENER_NAME = /^[a-z0-9-]+$/;
const PACKAGE_SPEC = /^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*(@[^\s]+)?$/;

function isObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

class Checker {
  constructor() { this.errors = []; }
  fail(path, message) { this.errors.push(`${path}: ${message}`); }
  keys(path, value, allowed) {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.fail(path ? `${path}.${key}` : key, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
  string(path, value, pattern, what) {
    if (typeof value !== 'string') return this.fail(path, `expected a string, got ${typeName(value)}`);
    if (pattern && !pattern.test(value)) this.fail(path, `expected ${what}, got ${JSON.stringify(value)}`);
  }
  integer(path, value, min, max) {
    if (!Number.isInteger(value) || value < min || value > max) this.fail(path, `expected an integer ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  stringArray(path, value, pattern, what, { nonEmpty = false } = {}) {
    if (!Array.isArray(value)) return this.fail(path, `expected an array, got ${typeName(value)}`);
    if (nonEmpty && value.length === 0) this.fail(path, 'must not be empty');
    value.forEach((item, i) => this.string(`${path}[${i}]`, item, pattern, what));
  }
  stringMap(path, value) {
    if (!isObject(value)) return this.fail(path, `expected an object, got ${typeName(value)}`);
    for (const [k, v] of Object.entries(value)) this.string(`${path}.${k}`, v);
  }
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function validateConfig(input) {
  const c = new Checker();
  if (!isObject(input)) {
    c.fail('(root)', `expected a JSON object, got ${typeName(input)}`);
    return { config: null, errors: c.errors };
  }
  c.keys('', input, ['hostname', 'registry', 'users', 'services', 'tunnel', 'networks', 'hosts']);
  if ('hostname' in input) c.string('hostname', input.hostname, HOST_NAME, 'a host name ([A-Za-z0-9-], at most 63)');
  if ('registry' in input) {
    c.string('registry', input.registry, /^https?:\/\/[^\s/]+(\/\S*)?$/, 'an http(s) URL');
  }
  const users = input.users ?? {};
  if (!isObject(users)) c.fail('users', `expected an object, got ${typeName(users)}`);
  else {
    const uids = new Map();
    for (const [name, user] of Object.entries(users)) {
      const path = `users.${name}`;
      if (!USER_NAME.test(name)) c.fail(path, 'a user name must match [a-z_][a-z0-9_-]{0,31}');
      if (!isObject(user)) { c.fail(path, `expected an object, got ${typeName(user)}`); continue; }
      c.keys(path, user, ['uid', 'gid', 'password', 'packages', 'shell']);
      if ('uid' in user) {
        if (name === 'root') { if (user.uid !== 0) c.fail(`${path}.uid`, 'root is always uid 0'); }
        else c.integer(`${path}.uid`, user.uid, 1000, 60000);
        if (uids.has(user.uid)) c.fail(`${path}.uid`, `uid ${user.uid} is also given to ${uids.get(user.uid)}`);
        uids.set(user.uid, name);
      }
      if ('gid' in user) c.integer(`${path}.gid`, user.gid, 0, 60000);
      if ('password' in user && user.password !== null) {
        c.string(`${path}.password`, user.password, SCRYPT_HASH, 'an scrypt hash "scrypt$N$r$p$salt$hash" (base64 salt and hash) or null');
      }
      if ('packages' in user) c.stringArray(`${path}.packages`, user.packages, PACKAGE_SPEC, 'an npm package spec like name@1.2.3');
      if ('shell' in user) c.string(`${path}.shell`, user.shell, /^\//, 'an absolute path');
    }
  }
  const services = input.services ?? [];
  if (!Array.isArray(services)) c.fail('services', `expected an array, got ${typeName(services)}`);
  else {
    const names = new Set();
    services.forEach((service, i) => {
      const path = `services[${i}]`;
      if (!isObject(service)) return c.fail(path, `expected an object, got ${typeName(service)}`);
      c.keys(path, service, ['name', 'user', 'argv', 'cwd', 'env', 'restart']);
      c.string(`${path}.name`, service.name, /^[a-z0-9][a-z0-9_-]{0,31}$/, 'a service name');
      if (names.has(service.name)) c.fail(`${path}.name`, `duplicate service name ${service.name}`);
      names.add(service.name);
      if ('user' in service) {
        c.string(`${path}.user`, service.user, USER_NAME, 'a user name');
        if (typeof service.user === 'string' && service.user !== 'root' && isObject(users) && !(service.user in users)) {
          c.fail(`${path}.user`, `user ${service.user} is not in users`);
        }
      }
      if (!('argv' in service)) c.fail(`${path}.argv`, 'is required');
      else c.stringArray(`${path}.argv`, service.argv, null, 'a string', { nonEmpty: true });
      if ('cwd' in service) c.string(`${path}.cwd`, service.cwd, /^\//, 'an absolute path');
      if ('env' in service) c.stringMap(`${path}.env`, service.env);
      if ('restart' in service) c.string(`${path}.restart`, service.restart, /^(always|on-failure|never)$/, 'always, on-failure or never');
    });
  }
  const tunnel = checkTunnel(c, input.tunnel ?? { listen: [] });
  const networks = input.networks ?? [];
  checkNetworks(c, networks);
  const hosts = input.hosts ?? {};
  checkHosts(c, hosts);
  if (c.errors.length) return { config: null, errors: c.errors };
  return {
    config: {
      hostname: input.hostname ?? null,
      registry: input.registry ?? null,
      users: isObject(users) ? users : {},
      services: services.map((s) => ({ user: 'root', cwd: '/', env: {}, restart: 'on-failure', ...s })),
      tunnel,
      networks: networks.map((n) => ({ ...n, mac: n.mac.toLowerCase() })),
      hosts,
    },
    errors: [],
  };
}

// tunnel: { listen: [{ name, port }] }: the guest ports the tunnel serves
// (tunnel.js). Returns it with its defaults.
function checkTunnel(c, tunnel) {
  if (!isObject(tunnel)) { c.fail('tunnel', `expected an object, got ${typeName(tunnel)}`); return null; }
  c.keys('tunnel', tunnel, ['listen']);
  const listen = tunnel.listen ?? [];
  if (!Array.isArray(listen)) { c.fail('tunnel.listen', `expected an array, got ${typeName(listen)}`); return null; }
  const names = new Set();
  const ports = new Set();
  listen.forEach((listener, i) => {
    const path = `tunnel.listen[${i}]`;
    if (!isObject(listener)) return c.fail(path, `expected an object, got ${typeName(listener)}`);
    c.keys(path, listener, ['name', 'port']);
    c.string(`${path}.name`, listener.name, LISTENER_NAME, 'a listener name ([a-z0-9-]+)');
    c.integer(`${path}.port`, listener.port, 1, 65535);
    if (names.has(listener.name)) c.fail(`${path}.name`, `duplicate listener name ${listener.name}`);
    if (ports.has(listener.port)) c.fail(`${path}.port`, `port ${listener.port} is also another listener's`);
    names.add(listener.name);
    ports.add(listener.port);
  });
  return { listen };
}

// networks: [{ mac, address, prefix }]: NICs found by MAC (network.js).
function checkNetworks(c, networks) {
  if (!Array.isArray(networks)) return c.fail('networks', `expected an array, got ${typeName(networks)}`);
  const macs = new Set();
  const addresses = new Set();
  networks.forEach((network, i) => {
    const path = `networks[${i}]`;
    if (!isObject(network)) return c.fail(path, `expected an object, got ${typeName(network)}`);
    c.keys(path, network, ['mac', 'address', 'prefix']);
    if (!('mac' in network)) c.fail(`${path}.mac`, 'is required');
    else if (typeof network.mac !== 'string' || !MAC.test(network.mac.toLowerCase())) c.fail(`${path}.mac`, `expected a MAC address like 52:54:00:12:34:56, got ${JSON.stringify(network.mac)}`);
    else if (macs.has(network.mac.toLowerCase())) c.fail(`${path}.mac`, `duplicate MAC ${network.mac}`);
    else macs.add(network.mac.toLowerCase());
    if (!('address' in network)) c.fail(`${path}.address`, 'is required');
    else if (!isIPv4(network.address)) c.fail(`${path}.address`, `expected an IPv4 address like 192.168.50.2, got ${JSON.stringify(network.address)}`);
    else if (addresses.has(network.address)) c.fail(`${path}.address`, `duplicate address ${network.address}`);
    else addresses.add(network.address);
    if (!('prefix' in network)) c.fail(`${path}.prefix`, 'is required');
    else c.integer(`${path}.prefix`, network.prefix, 1, 32);
  });
}

// hosts: { name: IPv4 }: lines of /etc/hosts.
function checkHosts(c, hosts) {
  if (!isObject(hosts)) return c.fail('hosts', `expected an object, got ${typeName(hosts)}`);
  for (const [name, address] of Object.entries(hosts)) {
    if (!HOST_ALIAS.test(name) || name.length > 253) c.fail(`hosts.${name}`, 'a host name must be labels of [A-Za-z0-9-] separated by dots');
    if (!isIPv4(address)) c.fail(`hosts.${name}`, `expected an IPv4 address like 192.168.50.3, got ${JSON.stringify(address)}`);
  }
}

function isIPv4(value) {
  return typeof value === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(value) && value.split('.').every((o) => Number(o) <= 255 && String(Number(o)) === o);
}

// Parses the raw bytes of a config volume: JSON, NUL-padded.
function parseConfigVolume(bytes) {
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  const text = bytes.subarray(0, end).toString('utf8').trim();
  if (text === '') return { config: null, errors: ['(volume): empty, expected a JSON document'] };
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { config: null, errors: [`(volume): not valid JSON: ${e.message}`] };
  }
  return validateConfig(json);
}

// A stable uid for a user with none given: 1000 + FNV-1a(name) mod 59000.
function defaultUid(name) {
  if (name === 'root') return 0;
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(name, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 1000 + (h % 59000);
}

module.exports = { validateConfig, parseConfigVolume, defaultUid };
