'use strict';
// Stands in for a native build: writes a marker next to the package.
require('node:fs').writeFileSync(require('node:path').join(__dirname, 'built.txt'), 'built by the install script\n');
