'use strict';
// Password hashes are scrypt with a per-user salt, written by the host as
// "scrypt$N$r$p$<salt base64>$<hash base64>" (NodeOS once used unsalted SHA-1).

const crypto = require('crypto');

function parseHash(text) {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(text ?? '');
  if (!m) return null;
  return { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]), salt: Buffer.from(m[4], 'base64'), hash: Buffer.from(m[5], 'base64') };
}

function hashPassword(password, { N = 16384, r = 8, p = 1, salt = crypto.randomBytes(16) } = {}) {
  const hash = crypto.scryptSync(password, salt, 32, { N, r, p, maxmem: 256 * N * r });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

function verifyPassword(password, stored) {
  const h = parseHash(stored);
  if (!h || h.hash.length === 0) return false;
  const got = crypto.scryptSync(password, h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r });
  return crypto.timingSafeEqual(got, h.hash);
}

module.exports = { parseHash, hashPassword, verifyPassword };
