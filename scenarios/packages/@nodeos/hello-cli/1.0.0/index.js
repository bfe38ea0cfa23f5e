'use strict';
exports.version = require('./package.json').version;
