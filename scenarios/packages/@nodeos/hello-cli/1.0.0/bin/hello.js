#!/usr/bin/env node
'use strict';
// Prints its own version first, then proves every dependency resolved.
const { name, version } = require('../package.json');
console.log(`${name.split('/').pop()} ${version}`);
const args = require('args-lite')(process.argv.slice(2));
if (args.flags.includes('--version')) process.exit(0);
const config = require('@nodeos/config').load();
console.log(require('@nodeos/greeting').greet(args.rest[0] || config.greet));
console.log(`plugins: ${require('@nodeos/plugin-json').count}, native: ${require('@nodeos/native-sim').built ? 'built' : 'missing'}, prebuilt: ${require('@nodeos/prebuilt').ready}`);
require('@nodeos/logger').info('done');
