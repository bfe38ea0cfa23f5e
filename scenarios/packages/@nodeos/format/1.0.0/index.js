'use strict';
exports.format = (s) => `[${s}]`;
