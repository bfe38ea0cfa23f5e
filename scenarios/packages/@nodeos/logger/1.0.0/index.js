'use strict';
const { format } = require('@nodeos/format');
exports.info = (s) => console.log(format(s));
