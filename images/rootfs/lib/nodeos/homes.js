'use strict';
// Users, their homes and /etc. The users map (name -> { name, uid, gid, home,
// password, shell, volume, readOnly }) is init's; this fills it, and the
// agent reads it to decide who a request runs as.

const fs = require('fs');
const { defaultUid } = require('./config');
const { inspectSuperblock } = require('./ext4');
const { disksBySerial } = require('./mounts');

// Later fields win over earlier ones for the same user; undefined ones do not count.
function addUser(users, name, fields) {
  const given = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  const existing = users.get(name) || {};
  const home = name === 'root' ? '/root' : `/home/${name}`;
  const uid = given.uid ?? existing.uid ?? defaultUid(name);
  users.set(name, { name, home, password: null, shell: '/bin/nsh', ...existing, ...given, uid, gid: given.gid ?? existing.gid ?? uid });
}

// The home volume's ids, given the owner of its root directory (stat) and
// what the configuration says (configured: { uid, gid } or undefined).
function volumeIds(name, stat, configured) {
  // The owner of the volume's root directory is the user's uid: it travels
  // with the volume, so a home keeps its owner across boots and machines.
  const uid = name === 'root' ? 0 : stat.uid !== 0 ? stat.uid : configured?.uid ?? defaultUid(name);
  const conflict = configured?.uid !== undefined && name !== 'root' && stat.uid !== 0 && stat.uid !== configured.uid;
  const gid = stat.uid !== 0 ? stat.gid : configured?.gid ?? uid;
  return { uid, gid, conflict };
}

function readHead(device, length) {
  const fd = fs.openSync(device, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const n = fs.readSync(fd, buffer, 0, length, 0);
    return buffer.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

// Fills users from the configuration and the home volumes (disks with
// serial home-NAME), and appends each home it mounts to `mounted`, which
// shutdown unmounts: so a failure half-way still leaves both as far as it got.
function mountHomes({ out, addon, config, users, mounted, hostname }) {
  const a = addon;
  for (const [name, user] of Object.entries(config?.users ?? {})) {
    addUser(users, name, { uid: name === 'root' ? 0 : user.uid, gid: user.gid, password: user.password ?? null, shell: user.shell ?? '/bin/nsh' });
  }
  if (!users.has('root')) addUser(users, 'root', { uid: 0, gid: 0 });
  for (const { device, serial } of disksBySerial()) {
    const m = /^home-([a-z_][a-z0-9_-]{0,31})$/.exec(serial);
    if (!m) continue;
    const name = m[1];
    const target = name === 'root' ? '/root' : `/home/${name}`;
    fs.mkdirSync(target, { recursive: true });
    // Never format, never repair: a volume that is not clean ext4 is either
    // left alone or mounted read-only, and the console says which and why.
    let superblock;
    try { superblock = inspectSuperblock(readHead(device, 2048)); } catch (e) { superblock = { ext4: false, reason: `unreadable (${e.code})` }; }
    // The serial names the user even when the volume is unusable: they get
    // a home in RAM for this boot, and the console says why.
    const ephemeral = (why) => {
      out.error('homes', `${serial} (${device}): not mounted${why}; ${name}'s home is ephemeral this boot`);
      addUser(users, name, { volumeUnusable: true });
    };
    if (!superblock.ext4) {
      ephemeral(`: ${superblock.reason}`);
      continue;
    }
    let readOnly = superblock.hasErrors;
    try {
      const flags = a.MS_NOSUID | a.MS_NODEV | a.MS_NOATIME | (readOnly ? a.MS_RDONLY : 0);
      a.mount(device, target, 'ext4', flags, 'errors=remount-ro');
      if (readOnly) out.error('homes', `${serial} (${device}): the file system has recorded errors; mounted read-only, check it with e2fsck`);
    } catch (first) {
      try {
        a.mount(device, target, 'ext4', a.MS_NOSUID | a.MS_NODEV | a.MS_RDONLY, 'noload');
        readOnly = true;
        out.error('homes', `${serial} (${device}): could not be mounted read-write (${first.code}); mounted read-only, check it with e2fsck`);
      } catch (second) {
        ephemeral(` (${second.code}: ${second.message})`);
        continue;
      }
    }
    mounted.push(target);
    const stat = fs.statSync(target);
    const { uid, gid, conflict } = volumeIds(name, stat, config?.users?.[name]);
    if (conflict) {
      out.warning('homes', `${serial}: the volume belongs to uid ${stat.uid}, the configuration says ${config.users[name].uid}; the volume wins`);
    }
    if (!readOnly) {
      fs.chownSync(target, uid, gid);
      fs.chmodSync(target, 0o700);
    }
    addUser(users, name, { uid, gid, volume: device, readOnly });
  }
  // Users without a volume get an ephemeral home in RAM.
  for (const user of users.values()) {
    if (user.volume) continue;
    if (user.name !== 'root' && !user.volumeUnusable) out.warning('homes', `no volume with serial home-${user.name}: ${user.name}'s home is in RAM this boot and is lost at shutdown`);
    fs.mkdirSync(user.home, { recursive: true });
    fs.chownSync(user.home, user.uid, user.gid);
    fs.chmodSync(user.home, 0o700);
  }
  writeEtc(etcFiles({ users, hostname: hostname(), registry: config?.registry }));
}

// /etc's files from the users, the hostname and the npm registry: [path, text, mode]
// (/etc/hosts is the network stage's).
function etcFiles({ users, hostname, registry }) {
  const sorted = [...users.values()].sort((x, y) => x.uid - y.uid);
  return [
    ['/etc/passwd', sorted.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:${u.shell}\n`).join('')],
    ['/etc/group', sorted.map((u) => `${u.name}:x:${u.gid}:\n`).join('')],
    // No password means the account cannot log in ("!"), as in shadow(5).
    ['/etc/shadow', sorted.map((u) => `${u.name}:${u.password ?? '!'}\n`).join(''), 0o600],
    ['/etc/hostname', hostname + '\n'],
    ['/etc/npmrc', [
      registry ? `registry=${registry}` : null,
      'prefix=${HOME}', 'cache=${HOME}/.npm', 'update-notifier=false', 'fund=false', 'audit=false', 'loglevel=warn',
    ].filter(Boolean).join('\n') + '\n'],
  ];
}

function writeEtc(files) {
  for (const [file, text, mode] of files) {
    if (mode === undefined) fs.writeFileSync(file, text);
    else fs.writeFileSync(file, text, { mode });
  }
}

// Who an agent request runs as: a user by name, a raw uid, or root.
function account(users, message) {
  let user = users.get('root');
  if (typeof message.user === 'string') {
    user = users.get(message.user);
    if (!user) throw Object.assign(new Error(`user: no user ${JSON.stringify(message.user)} on this machine`), { code: 'EINVAL' });
  } else if (Number.isInteger(message.uid)) {
    user = [...users.values()].find((u) => u.uid === message.uid) ?? { name: String(message.uid), uid: message.uid, gid: message.gid ?? message.uid, home: '/' };
  }
  return {
    uid: user.uid, gid: Number.isInteger(message.gid) ? message.gid : user.gid, home: user.home,
    env: { PATH: `${user.home}/bin:/bin:/usr/bin`, HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/nsh' },
  };
}

module.exports = { mountHomes, addUser, volumeIds, etcFiles, account };
