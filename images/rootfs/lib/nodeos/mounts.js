'use strict';
// The file systems every boot has: the kernel's, and tmpfs for everything
// writable (the root is read-only erofs).

const fs = require('fs');

// Init's own runtime state (config-result.json, the hidden command line).
const RUN = '/run/nodeos';

function mountAll(addon) {
  const a = addon;
  const mount = (source, target, type, flags, data) => {
    fs.mkdirSync(target, { recursive: true });
    a.mount(source, target, type, flags, data);
  };
  const secure = a.MS_NOSUID | a.MS_NODEV;
  mount('proc', '/proc', 'proc', secure | a.MS_NOEXEC);
  mount('sysfs', '/sys', 'sysfs', secure | a.MS_NOEXEC);
  if (!fs.existsSync('/dev/null')) mount('devtmpfs', '/dev', 'devtmpfs', a.MS_NOSUID, 'mode=0755');
  for (const [target, mode] of [['/run', '0755'], ['/tmp', '1777'], ['/var', '0755'], ['/etc', '0755'], ['/home', '0755'], ['/root', '0700'], ['/dev/shm', '1777']]) {
    mount('tmpfs', target, 'tmpfs', secure, `mode=${mode},size=50%`);
  }
  fs.mkdirSync(RUN, { recursive: true });
  fs.mkdirSync('/var/log', { recursive: true });
  fs.mkdirSync('/var/tmp', { recursive: true, mode: 0o1777 });
  // Root does not follow a user's symbolic link in a sticky world-writable
  // directory (/tmp), nor may users hard-link files they cannot write.
  fs.writeFileSync('/proc/sys/fs/protected_symlinks', '1');
  fs.writeFileSync('/proc/sys/fs/protected_hardlinks', '1');
}

// Small readers of /sys and /proc that the stages share.
function safeReaddir(dir) { try { return fs.readdirSync(dir); } catch { return []; } }

function readText(file) { try { return fs.readFileSync(file, 'utf8').trim(); } catch { return null; } }

function disksBySerial() {
  const disks = [];
  for (const name of safeReaddir('/sys/block')) {
    try { disks.push({ device: `/dev/${name}`, serial: fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() }); } catch { /* no serial */ }
  }
  return disks;
}

function findDiskBySerial(serial) {
  for (const name of safeReaddir('/sys/block')) {
    try {
      if (fs.readFileSync(`/sys/block/${name}/serial`, 'utf8').trim() === serial) return `/dev/${name}`;
    } catch { /* not a virtio disk */ }
  }
  return null;
}

module.exports = { RUN, mountAll, safeReaddir, readText, disksBySerial, findDiskBySerial };
