'use strict';
// Reads just enough of an ext4 superblock to decide how to mount a home
// volume before the kernel sees it: is it ext4 at all, and did the kernel or
// e2fsck record errors on it? (The layout is in the kernel's fs/ext4/ext4.h.)

const SUPERBLOCK_OFFSET = 1024;
const MAGIC = 0xef53;
const STATE_ERRORS = 0x0002;
const INCOMPAT_RECOVER = 0x0004;

function inspectSuperblock(bytes) {
  if (bytes.length < SUPERBLOCK_OFFSET + 1024) return { ext4: false, reason: `volume is only ${bytes.length} bytes` };
  const sb = bytes.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + 1024);
  const magic = sb.readUInt16LE(0x38);
  if (magic !== MAGIC) return { ext4: false, reason: `no ext4 superblock (magic 0x${magic.toString(16).padStart(4, '0')}, expected 0xef53)` };
  const state = sb.readUInt16LE(0x3a);
  const incompat = sb.readUInt32LE(0x60);
  const label = sb.subarray(0x78, 0x88).toString('latin1').replace(/\0.*$/s, '');
  return {
    ext4: true,
    hasErrors: (state & STATE_ERRORS) !== 0 || sb.readUInt32LE(0x194) > 0, // s_error_count
    needsRecovery: (incompat & INCOMPAT_RECOVER) !== 0,
    label,
  };
}

module.exports = { inspectSuperblock };
