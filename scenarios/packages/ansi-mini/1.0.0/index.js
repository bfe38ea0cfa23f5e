'use strict';
exports.bold = (s) => process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s;
