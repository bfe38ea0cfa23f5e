'use strict';
module.exports = (s, n, c = ' ') => String(s).padStart(n, c);
module.exports.right = (s, n, c = ' ') => String(s).padEnd(n, c);
