'use strict';
// The boot configuration: a volume (a disk whose serial nodeos.config names)
// holding JSON (config.js parses it), and the result init writes back for
// the host to read.

const fs = require('fs');
const { parseConfigVolume } = require('./config');
const { RUN, findDiskBySerial } = require('./mounts');

function readConfigVolume(device) {
  const fd = fs.openSync(device, 'r');
  try {
    const max = 4 * 1024 * 1024;
    const chunks = [];
    let total = 0;
    const buffer = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, total);
      if (n === 0) break;
      const chunk = Buffer.from(buffer.subarray(0, n));
      chunks.push(chunk);
      total += n;
      if (chunk.includes(0) || total >= max) break;
    }
    return Buffer.concat(chunks);
  } finally {
    fs.closeSync(fd);
  }
}

// Returns the configuration (null without a volume or with errors) and the
// result the host reads: applied, errors, source.
function loadConfig({ out, serial }) {
  const device = findDiskBySerial(serial);
  if (!device) return { config: null, result: { applied: true, errors: [], source: 'none' } };
  const { config, errors } = parseConfigVolume(readConfigVolume(device));
  const result = { applied: errors.length === 0, errors, source: device };
  if (errors.length) {
    out.log('nodeos: config failed');
    for (const e of errors) out.error('config', e);
    return { config: null, result };
  }
  out.log('nodeos: config ok');
  return { config, result };
}

function writeConfigResult({ bootId, result }) {
  fs.writeFileSync(`${RUN}/config-result.json`, JSON.stringify({ bootId, ...result }, null, 2) + '\n');
}

module.exports = { loadConfig, writeConfigResult, readConfigVolume };
