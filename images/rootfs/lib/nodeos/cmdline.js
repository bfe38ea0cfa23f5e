'use strict';
// The nodeos.* kernel parameters. Unknown or malformed ones are reported and
// ignored: a typo on the command line must never stop a machine from booting.

const PARAMETERS = {
  'nodeos.hostname': (v) => (/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(v) ? v : error('a host name ([A-Za-z0-9-], at most 63)')),
  'nodeos.shell': boolean,
  'nodeos.agent': boolean,
  'nodeos.net': (v) => {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+),(\d+\.\d+\.\d+\.\d+)$/.exec(v);
    if (!m || Number(m[2]) > 32) return error('ADDR/PREFIX,GATEWAY, e.g. 10.0.2.15/24,10.0.2.2');
    return { address: m[1], prefix: Number(m[2]), gateway: m[3] };
  },
  'nodeos.config': (v) => (/^[A-Za-z0-9._-]{1,20}$/.test(v) ? v : error('a disk serial ([A-Za-z0-9._-], at most 20)')),
  // The HMAC key for sealed console lines (seal.js), as hex: 16 to 64 bytes.
  'nodeos.seal': (v) => (/^(?:[0-9A-Fa-f]{2}){16,64}$/.test(v) ? v : error('32 to 128 hex digits, an even number')),
  'nodeos.test.exit': boolean,
  'nodeos.test.faults': boolean,
  'nodeos.test.delay': (v) => {
    const m = /^([a-z-]+):(\d{1,6})$/.exec(v);
    return m ? { phase: m[1], ms: Number(m[2]) } : error('PHASE:MS, e.g. init:300');
  },
};

const DEFAULTS = { hostname: 'nodeos', shell: true, agent: true, net: null, config: 'nodeos-config', seal: null, testExit: false, testFaults: false, testDelay: null };

// Values never echoed on the console, not even when malformed: the console
// is what users read.
const SECRET = new Set(['nodeos.seal']);

class ParameterError extends Error {}
function error(expected) { throw new ParameterError(`expected ${expected}`); }
function boolean(v) {
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '0' || v === 'false' || v === 'no') return false;
  return error('0 or 1');
}

function camel(key) {
  return key.slice('nodeos.'.length).replace(/\.([a-z])/g, (_, c) => c.toUpperCase());
}

// Splits like the kernel does: spaces separate, double quotes group.
function splitCmdline(text) {
  const words = [];
  const re = /(?:[^\s"]+|"[^"]*")+/g;
  let m;
  while ((m = re.exec(text)) !== null) words.push(m[0].replace(/"/g, ''));
  return words;
}

function parseCmdline(text) {
  const settings = { ...DEFAULTS };
  const errors = [];
  const badSecrets = new Set();
  for (const word of splitCmdline(text)) {
    if (!word.startsWith('nodeos.')) continue;
    const eq = word.indexOf('=');
    const key = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? '1' : word.slice(eq + 1);
    const parse = PARAMETERS[key];
    if (!parse) { errors.push(`unknown parameter ${key}`); continue; }
    try {
      settings[camel(key)] = parse(value);
    } catch (e) {
      if (!(e instanceof ParameterError)) throw e;
      errors.push(`${key}=${SECRET.has(key) ? `(${value.length} characters, not shown)` : value}: ${e.message}`);
      if (SECRET.has(key)) badSecrets.add(key);
    }
  }
  // A key that is malformed anywhere is no key: the host then sees lines it
  // cannot check, rather than lines sealed with a key it did not mean.
  for (const key of badSecrets) settings[camel(key)] = DEFAULTS[camel(key)];
  return { settings, errors };
}

module.exports = { parseCmdline, splitCmdline, DEFAULTS };
