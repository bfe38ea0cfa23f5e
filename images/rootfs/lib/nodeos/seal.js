'use strict';
// Sealed console lines. Anyone who can write to the console (a user logged
// in at the console shell, a service) can print "nodeos: ready …"; only init
// knows the key the host put on the kernel command line (nodeos.seal), so
// only init's lines carry a MAC that the host can check. images/PROTOCOL.md
// has the format; the HMAC itself is the addon's (hmacSha256Hex), because
// node's crypto module costs tens of milliseconds to load under TCG.

// A sealed line ends in " ~SEQ.MAC": SEQ counts init's sealed lines of this
// boot from 1, MAC is the first 16 hex digits of HMAC-SHA256(key, "BOOTID SEQ LINE").
const SUFFIX = / ~([1-9][0-9]*)\.([0-9a-f]{16})$/;

function mac(hmacHex, key, bootId, seq, line) {
  return hmacHex(key, `${bootId} ${seq} ${line}`).slice(0, 16);
}

// Returns seal(line) -> the line as printed. Only a line's first physical
// line is sealed (a stack trace follows unsealed): the host reads the console
// line by line, and a MAC at the end of the last one would vouch for text
// that a reader of the first one never saw checked.
function createSealer({ key, bootId, hmacHex }) {
  let seq = 0;
  return (text) => {
    const nl = text.indexOf('\n');
    const line = nl < 0 ? text : text.slice(0, nl);
    seq++;
    return `${line} ~${seq}.${mac(hmacHex, key, bootId, seq, line)}${nl < 0 ? '' : text.slice(nl)}`;
  };
}

// What the host does with a console line: the line without its seal when the
// MAC is right, else null. Here for the tests and as the reference.
function openSealed(physical, { key, bootId, hmacHex }) {
  const m = SUFFIX.exec(physical);
  if (!m) return null;
  const line = physical.slice(0, m.index);
  const seq = Number(m[1]);
  return mac(hmacHex, key, bootId, seq, line) === m[2] ? { seq, line } : null;
}

// The kernel command line as users may see it: every nodeos.seal value, and
// the key wherever else it appears, replaced by "hidden". String searches,
// not regular expressions: compiling one cost ~10 ms under TCG, on the boot
// path.
function hideSealKey(cmdline, keyHex) {
  const name = 'nodeos.seal=';
  let out = '';
  let from = 0;
  for (let at = cmdline.indexOf(name); at >= 0; at = cmdline.indexOf(name, at + 1)) {
    if (at > 0 && !' \t\n"'.includes(cmdline[at - 1])) continue;
    let end = at + name.length;
    while (end < cmdline.length && !' \t\n"'.includes(cmdline[end])) end++;
    out += `${cmdline.slice(from, at + name.length)}hidden`;
    from = end;
  }
  out += cmdline.slice(from);
  if (!keyHex) return out;
  // Hex digits only: lower-casing keeps every offset.
  const lower = out.toLowerCase();
  const key = keyHex.toLowerCase();
  if (lower.length !== out.length) return out;
  let hidden = '';
  from = 0;
  for (let at = lower.indexOf(key); at >= 0; at = lower.indexOf(key, from)) {
    hidden += `${out.slice(from, at)}hidden`;
    from = at + key.length;
  }
  return hidden + out.slice(from);
}

// The key's bytes from its hex (cmdline.js checked it). By hand: Buffer's
// hex decoder cost ~2.5 ms at its first use under TCG.
function keyFromHex(hex) {
  const key = Buffer.alloc(hex.length / 2);
  for (let i = 0; i < key.length; i++) key[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return key;
}

module.exports = { createSealer, openSealed, hideSealKey, keyFromHex, SUFFIX };
