'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseRecord, kmsgEvent, createForwarder } = require('../rootfs/lib/nodeos/kernel-log');

test('kernel log records parse, continuation lines dropped', () => {
  assert.deepEqual(parseRecord('4,512,1034567,-;WARNING: CPU: 0 PID: 1 at x.c:10 f+0x1/0x2\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n'),
    { level: 4, facility: 0, seq: 512, tsUs: 1034567, flags: '-', text: 'WARNING: CPU: 0 PID: 1 at x.c:10 f+0x1/0x2' });
  // A record written to /dev/kmsg by a program gets the user facility (1).
  assert.deepEqual(parseRecord('11,7,5,c;nodeos test\n'), { level: 3, facility: 1, seq: 7, tsUs: 5, flags: 'c', text: 'nodeos test' });
  // With CONFIG_PRINTK_CALLER the prefix has one more field.
  assert.equal(parseRecord('6,1,2,-,caller=T1;Linux version 6.1\n').text, 'Linux version 6.1');
  assert.equal(parseRecord('6,1,2,-;semi;colons;stay\n').text, 'semi;colons;stay');
  assert.equal(parseRecord('garbage'), null);
  assert.equal(parseRecord('6,x,2,-;t'), null);
});

test('warnings and worse become events, cut to 1024 characters; notices and below do not', () => {
  assert.deepEqual(kmsgEvent('0,1,2,-;emerg\n'), { seq: 1, level: 0, text: 'emerg' });
  assert.deepEqual(kmsgEvent('4,9,2,-;a process invoked oom-killer: gfp_mask=0x0\n'), { seq: 9, level: 4, text: 'a process invoked oom-killer: gfp_mask=0x0' });
  assert.equal(kmsgEvent('5,1,2,-;notice\n'), null);
  assert.equal(kmsgEvent('6,1,2,-;info\n'), null);
  assert.equal(kmsgEvent('15,1,2,-;user debug\n'), null);
  assert.equal(kmsgEvent(`3,1,2,-;${'y'.repeat(3000)}\n`).text.length, 1024);
});

function clock() {
  const c = { t: 0, timers: [] };
  c.now = () => c.t;
  c.setTimer = (fn, ms) => { const timer = { fn, at: c.t + ms }; c.timers.push(timer); return timer; };
  c.clearTimer = (timer) => { c.timers = c.timers.filter((x) => x !== timer); };
  c.advance = (ms) => {
    c.t += ms;
    for (const timer of c.timers.filter((x) => x.at <= c.t)) { c.clearTimer(timer); timer.fn(); }
  };
  return c;
}

test('at most 100 kmsg events a second; the rest are counted once a second while dropping', () => {
  const c = clock();
  const sent = [];
  const push = createForwarder({ send: (name, fields) => sent.push({ name, ...fields }), now: c.now, setTimer: c.setTimer, clearTimer: c.clearTimer });
  for (let i = 0; i < 250; i++) push(`4,${i},0,-;w${i}\n`);
  push('6,999,0,-;info is not counted\n');
  assert.equal(sent.length, 100);
  assert.deepEqual(sent.at(-1), { name: 'kmsg', seq: 99, level: 4, text: 'w99' });
  assert.equal(c.timers.length, 1, 'one timer, only while dropping');
  c.advance(1000);
  assert.deepEqual(sent.at(-1), { name: 'kmsg-dropped', count: 150 });
  assert.equal(c.timers.length, 0, 'idle again: no timer');
  push('3,300,0,-;next second\n');
  assert.deepEqual(sent.at(-1), { name: 'kmsg', seq: 300, level: 3, text: 'next second' });
});

test('drops are reported before the events of the next second', () => {
  const c = clock();
  const sent = [];
  const push = createForwarder({ send: (name, fields) => sent.push(name === 'kmsg' ? fields.seq : `dropped ${fields.count}`), now: c.now, setTimer: c.setTimer, clearTimer: c.clearTimer, maxPerSecond: 2 });
  c.t = 500;
  for (let i = 0; i < 5; i++) push(`4,${i},0,-;w\n`);
  c.t = 1500; // the new window starts before the timer (armed at the first drop) fires
  push('4,5,0,-;w\n');
  assert.deepEqual(sent, [0, 1, 'dropped 3', 5]);
  assert.equal(c.timers.length, 0);
});
