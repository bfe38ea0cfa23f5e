'use strict';
const { title } = require('@nodeos/strings');
exports.greet = (who) => `${title('hello')}, ${who}!`;
