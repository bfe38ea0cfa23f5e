'use strict';
const host = require('@nodeos/plugin-host');
exports.count = host.register({ name: 'json', parse: JSON.parse });
