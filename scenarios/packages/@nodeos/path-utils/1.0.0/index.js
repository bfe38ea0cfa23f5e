'use strict';
const path = require('node:path');
exports.marker = (dir) => path.join(dir, 'built.txt');
