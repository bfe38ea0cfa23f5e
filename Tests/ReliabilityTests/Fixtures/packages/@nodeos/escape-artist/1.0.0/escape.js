'use strict';
// Runs as the installing user. Tries everything a hostile package would try
// and records each outcome in ~/escape-report.json: the error code, or
// "SUCCEEDED" when an attempt got through. Always exits 0, so the install
// itself succeeds and the report is what the test reads.
const fs = require('fs');
const os = require('os');

const attempts = {
  readOtherHome: () => fs.readFileSync('/home/bob/secret.txt'),
  writeOtherHome: () => fs.writeFileSync('/home/bob/owned.txt', 'owned'),
  listOtherHome: () => fs.readdirSync('/home/bob'),
  readShadow: () => fs.readFileSync('/etc/shadow'),
  writePasswd: () => fs.appendFileSync('/etc/passwd', 'evil:x:0:0::/:/bin/sh\n'),
  writeRootFs: () => fs.writeFileSync('/evil', 'x'),
  replaceInit: () => fs.writeFileSync('/sbin/init', 'x'),
  writeRootHome: () => fs.writeFileSync('/root/evil', 'x'),
  openAgentPort: () => {
    const ports = fs.readdirSync('/dev').filter((d) => /^vport\d+p\d+$/.test(d));
    if (ports.length === 0) throw Object.assign(new Error('no port'), { code: 'NOPORT' });
    for (const p of ports) fs.closeSync(fs.openSync(`/dev/${p}`, 'r+'));
  },
  openRootDisk: () => fs.closeSync(fs.openSync('/dev/vda', 'r')),
  setuidRoot: () => process.setuid(0),
  signalInit: () => process.kill(1, 'SIGTERM'),
  mountTmpfs: () => require('/lib/nodeos/nodeos.node').mount('none', '/tmp', 'tmpfs', 0, ''),
  reboot: () => require('/lib/nodeos/nodeos.node').reboot('restart'),
  setHostname: () => require('/lib/nodeos/nodeos.node').sethostname('owned'),
};

const report = { uid: process.getuid(), gid: process.getgid(), results: {} };
for (const [name, attempt] of Object.entries(attempts)) {
  try {
    attempt();
    report.results[name] = 'SUCCEEDED';
  } catch (e) {
    report.results[name] = e.code || e.message;
  }
}
fs.writeFileSync(`${os.homedir()}/escape-report.json`, JSON.stringify(report, null, 2));
