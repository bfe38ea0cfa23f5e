'use strict';
// Boots the built image with the plain-QEMU runner (images/qemu-boot) and
// checks the promises of the image itself, with no testbed involved.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const PHASES = ['kernel', 'node', 'init', 'mounts', 'config', 'homes', 'network', 'agent', 'ready'];

function boot(extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-boot-'));
  const report = path.join(dir, 'report.json');
  try {
    const run = spawnSync(path.join(root, 'images', 'qemu-boot'), ['--until-ready', '--report', report, '--timeout', '240', ...extra], { encoding: 'utf8', timeout: 300_000 });
    const console_ = run.stdout + run.stderr;
    assert.equal(run.status, 0, `qemu-boot failed:\n${console_.split('\n').slice(-25).join('\n')}`);
    return { console: console_, report: JSON.parse(fs.readFileSync(report, 'utf8')) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the image boots to the ready line under the plain-QEMU runner', () => {
  const { console: out, report } = boot();
  const lines = out.split('\n');
  const phaseLines = lines.filter((l) => /^nodeos: (phase [a-z-]+|ready) \d+\.\d{3}ms/.test(l));
  assert.deepEqual(phaseLines.map((l) => l.split(' ')[1] === 'ready' ? 'ready' : l.split(' ')[2]), PHASES, 'every boot phase, in order');
  assert.ok(phaseLines.at(-1).startsWith('nodeos: ready'), 'ready is the last phase line');
  const times = PHASES.map((p) => report.phases[p]);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], `phase ${PHASES[i]} (${times[i]}) is not before ${PHASES[i - 1]} (${times[i - 1]})`);
  assert.match(lines.filter((l) => l.startsWith('ready after ')).at(-1), /^ready after \d+ ms$/);
  assert.ok(out.includes('nodeos: halted'), 'powered off cleanly through init');
  assert.equal(report.initExe, '/bin/node', 'PID 1 is node');
  assert.equal(report.hello.startedFrom, 'snapshot', "node started init from init's startup snapshot");
  assert.match(report.hello.nodeVersion, /^v24\./);
  assert.ok(report.guestUsedMiB > 0 && report.guestUsedMiB < 96, `guest memory in use ${report.guestUsedMiB} MiB`);
  assert.equal(report.hello.config.applied, true);
  // Under TCG the report carries QEMU's translation counters at the ready line.
  assert.ok(report.tcg.translationBlocks > 10_000 && report.tcg.hostCodeBytes > report.tcg.translationBlocks, JSON.stringify(report.tcg));
  // A quiet boot prints only errors from the kernel; a clean one prints none.
  const kernelErrors = lines.filter((l) => /^\[\s*\d+\.\d+\] /.test(l) && !/reboot: Power down/.test(l));
  assert.deepEqual(kernelErrors, [], 'the kernel printed nothing on a quiet boot');
  // Nor does init warn: among others, V8 accepted init's code cache.
  assert.deepEqual(lines.filter((l) => /^nodeos: (warning|error) /.test(l)), [], 'init warned of nothing');
});

test('without the snapshot on the command line, /sbin/init boots as a script from its code cache', () => {
  // A later parameter of the same name replaces the kernel's earlier one, and
  // node ignores an empty NODE_OPTIONS.
  const { console: out, report } = boot(['--append', 'NODE_OPTIONS=']);
  assert.equal(report.hello.startedFrom, 'script');
  assert.deepEqual(out.split('\n').filter((l) => /^nodeos: (warning|error) /.test(l)), [], 'no warning: V8 accepted the code cache');
});

test('garbage on the kernel command line is reported and the machine still boots', () => {
  const { console: out } = boot(['--append', 'nodeos.hostname=-x nodeos.bogus=1 nodeos.seal=0123abc']);
  assert.match(out, /nodeos: error cmdline: nodeos\.hostname=-x: expected a host name/);
  assert.match(out, /nodeos: error cmdline: unknown parameter nodeos\.bogus/);
  // A malformed key is not echoed, and seals nothing.
  assert.match(out, /^nodeos: error cmdline: nodeos\.seal=\(7 characters, not shown\): expected 32 to 128 hex digits/m);
  assert.doesNotMatch(out, /0123abc|~\d+\.[0-9a-f]{16}$|^nodeos: boot /m);
  assert.match(out, /^nodeos: ready \S+ boot=\S+$/m);
});

test('with nodeos.seal every line of init\'s is sealed, from a boot line on, with the HMAC the host computes', () => {
  const key = '00112233445566778899aabbccddeeff';
  const { console: out, report } = boot(['--append', `nodeos.seal=${key}`]);
  const { bootId } = report.hello;
  const lines = out.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.includes('nodeos: ') && !l.startsWith('qemu-boot'));
  assert.equal(lines[0].replace(/ ~.*/, ''), `nodeos: boot ${bootId}`, 'the first line names the boot');
  let seq = 0;
  for (const physical of lines) {
    // init's line may follow the console shell's prompt.
    const line = physical.slice(physical.lastIndexOf('nodeos: '));
    const m = / ~(\d+)\.([0-9a-f]{16})$/.exec(line);
    assert.ok(m, `sealed: ${line}`);
    assert.equal(Number(m[1]), ++seq, `consecutive: ${line}`);
    const mac = require('node:crypto').createHmac('sha256', Buffer.from(key, 'hex')).update(`${bootId} ${m[1]} ${line.slice(0, m.index)}`).digest('hex').slice(0, 16);
    assert.equal(m[2], mac, `the MAC of ${line}`);
  }
  assert.ok(lines.some((l) => /^nodeos: ready \d+\.\d{3}ms boot=\S+ ~\d+\.[0-9a-f]{16}$/.test(l)));
  assert.ok(lines.at(-1).startsWith('nodeos: halted ~'));
  assert.doesNotMatch(JSON.stringify(report.hello), new RegExp(key));
});

test('the kernel takes the boot shortcuts on its command line', () => {
  // loglevel=7 and apic=verbose put the kernel's own words on the console.
  const { console: out } = boot(['--append', 'loglevel=7 apic=verbose']);
  // QEMU's APIC counts at 1 GHz: the period per jiffy is 1e9/HZ of the kernel built.
  const image = path.join(root, 'build', 'image');
  const hz = Number(/^CONFIG_HZ=(\d+)$/m.exec(fs.readFileSync(path.join(image, '.config'), 'utf8'))?.[1]);
  const period = 1e9 / hz;
  assert.match(fs.readFileSync(path.join(image, 'cmdline'), 'utf8'), new RegExp(`\\blapic_timer_period=${period}\\b`));
  assert.match(out, /Keeping unused kernel image \(initmem\) memory: \d+K/, 'keep_initmem: init code is not poisoned and freed');
  assert.doesNotMatch(out, /Freeing unused kernel image \(initmem\)/);
  assert.match(out, new RegExp(`lapic timer already calibrated ${period}\\b`), 'lapic_timer_period: no APIC timer calibration');
  assert.doesNotMatch(out, /calibrating APIC timer/);
  assert.match(out, /^nodeos: ready /m);
});

test("the kernel runs on NodeOS's own one-object DSDT and still powers off through ACPI", () => {
  const { console: out } = boot(['--append', 'loglevel=7']);
  // images/kernel/dsdt.asl, linked in place of QEMU's (acpi_init ~200 ms -> ~40 ms under TCG).
  assert.match(out, /ACPI: DSDT 0x[0-9A-F]+ 000030 \(v01 NODEOS NODEOS /, 'the DSDT in use is the kernel\'s own');
  assert.match(out, /ACPI: PM: \(supports S0 S5\)/, 'S5 (soft off) is there for poweroff');
  assert.doesNotMatch(out, /ACPI Error|ACPI BIOS Error/);
  // PCI is found by probing bus 0, as there is no root bridge in the namespace.
  assert.match(out, /PCI: Probing PCI hardware\r?$/m);
  assert.match(out, /^nodeos: ready /m);
  // boot() already required a clean exit: QEMU quit because the guest powered off.
  assert.match(out, /reboot: Power down/);
});

test('the tunnel carries a host request to a guest port and a guest request to a host listener', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeos-tunnel-'));
  try {
    const server = "require('http').createServer((q, s) => s.end('guest service says hi to ' + q.method + ' ' + q.url)).listen(8080, '127.0.0.1')";
    const config = JSON.stringify({
      tunnel: { listen: [{ name: 'registry', port: 4873 }] },
      services: [{ name: 'guestweb', argv: ['node', '-e', server] }],
    });
    const volume = Buffer.alloc(Math.ceil((config.length + 1) / 512) * 512);
    volume.write(config);
    fs.writeFileSync(path.join(dir, 'config.img'), volume);
    const host = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(__dirname, 'tunnel-host.js'))}`;
    const { console: out } = boot(['--disk', `${path.join(dir, 'config.img')}:nodeos-config`, '--tunnel-socket', path.join(dir, 'tunnel.sock'), '--then', host]);
    assert.match(out, /^tunnel-host: host -> guest: guest service says hi to GET \/x$/m);
    assert.match(out, /^tunnel-host: guest -> host: 200 registry on the host saw GET \/-\/ping$/m);
    assert.match(out, /^tunnel-host: ok$/m);
    assert.deepEqual(out.split('\n').filter((l) => /^nodeos: (warning|error) /.test(l)), [], 'init warned of nothing');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
