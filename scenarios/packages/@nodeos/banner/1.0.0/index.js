'use strict';
const pad = require('pad-lite');
exports.banner = (s) => `${pad.right('', s.length + 4, '*')}\n* ${s} *\n${pad.right('', s.length + 4, '*')}`;
