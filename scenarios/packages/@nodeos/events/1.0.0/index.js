'use strict';
const { EventEmitter } = require('node:events');
module.exports = EventEmitter;
