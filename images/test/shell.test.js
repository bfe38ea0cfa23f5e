'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parse, expandWord, ShellSyntaxError } = require('../rootfs/lib/nodeos/shell');

const words = (cmd, env = {}) => cmd.argv.map((w) => expandWord(w, env));

test('a simple command', () => {
  const [item] = parse('echo hello  world');
  assert.deepEqual(words(item.pipeline[0]), ['echo', 'hello', 'world']);
  assert.equal(item.next, null);
});

test('quotes, escapes and variables', () => {
  const env = { HOME: '/home/a', NAME: 'n' };
  const [item] = parse(`echo 'a $NAME' "b $NAME" c\\ d $NAME\${NAME}x ~/f "~" \\$NAME`);
  assert.deepEqual(words(item.pipeline[0], env), ['echo', 'a $NAME', 'b n', 'c d', 'nnx', '/home/a/f', '~', '$NAME']);
});

test('lists and pipelines', () => {
  const list = parse('a | b | c && d || e ; f');
  assert.deepEqual(list.map((i) => [i.pipeline.length, i.next]), [[3, '&&'], [1, '||'], [1, ';'], [1, null]]);
});

test('redirections and assignments', () => {
  const [item] = parse('FOO=1 BAR="x y" cmd arg > out 2>&1 < in 2> err >> app');
  const cmd = item.pipeline[0];
  assert.deepEqual(cmd.assignments.map((a) => [a.name, expandWord(a.value, {})]), [['FOO', '1'], ['BAR', 'x y']]);
  assert.deepEqual(words(cmd), ['cmd', 'arg']);
  assert.deepEqual(cmd.redirects.map((r) => r.op), ['>', '2>&1', '<', '2>', '>>']);
});

test('comments and empty lines', () => {
  assert.deepEqual(parse(''), []);
  assert.deepEqual(parse('   # just a comment'), []);
  assert.equal(parse('echo a # trailing').length, 1);
});

test('syntax errors say where', () => {
  for (const [line, message] of [
    ["echo 'open", /unterminated ' quote/],
    ['echo "open', /unterminated " quote/],
    ['| a', /missing command|unexpected/],
    ['a |', /missing command after \|/],
    ['a &&', /missing command after &&/],
    ['echo >', /> needs a file name/],
    ['sleep 1 &', /background jobs/],
  ]) {
    assert.throws(() => parse(line), (e) => e instanceof ShellSyntaxError && message.test(e.message) && e.column > 0, line);
  }
});
