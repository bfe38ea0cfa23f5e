'use strict';
const fs = require('node:fs');
const { marker } = require('@nodeos/path-utils');
exports.built = fs.existsSync(marker(__dirname));
