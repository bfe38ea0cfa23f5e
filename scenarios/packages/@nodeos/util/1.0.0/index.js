'use strict';
exports.version = '1.0.0';
exports.identity = (x) => x;
