'use strict';
const merge = require('@nodeos/deep-merge');
exports.load = (overrides = {}) => merge({ greet: 'world' }, overrides);
