'use strict';
exports.version = '2.0.0';
exports.identity = (x) => x;
exports.repeat = (s, n) => s.repeat(n);
