'use strict';
module.exports = (argv) => ({ flags: argv.filter((a) => a.startsWith('--')), rest: argv.filter((a) => !a.startsWith('--')) });
