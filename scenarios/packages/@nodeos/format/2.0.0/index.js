'use strict';
const { upper } = require('@nodeos/strings');
const pad = require('pad-lite');
exports.format = (s, width = 0) => pad(upper(s), width);
