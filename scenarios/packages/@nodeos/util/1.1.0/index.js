'use strict';
exports.version = '1.1.0';
exports.identity = (x) => x;
exports.isString = (x) => typeof x === 'string';
