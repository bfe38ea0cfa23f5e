'use strict';
exports.upper = (s) => String(s).toUpperCase();
