'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { hashPassword, verifyPassword, parseHash } = require('../rootfs/lib/nodeos/passwords');

test('a hash verifies its own password and no other', () => {
  const hash = hashPassword('s3cret', { N: 1024 });
  assert.match(hash, /^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.equal(verifyPassword('s3cret', hash), true);
  assert.equal(verifyPassword('s3cret ', hash), false);
  assert.equal(verifyPassword('', hash), false);
});

test('salts differ, so equal passwords give different hashes', () => {
  assert.notEqual(hashPassword('x', { N: 1024 }), hashPassword('x', { N: 1024 }));
});

test('no hash, or a malformed one, never verifies', () => {
  for (const stored of [null, '', '!', 'sha1$abc', 'scrypt$1024$8$1$$']) {
    assert.equal(verifyPassword('x', stored), false, String(stored));
  }
  assert.equal(parseHash('scrypt$x$8$1$a$b'), null);
});
