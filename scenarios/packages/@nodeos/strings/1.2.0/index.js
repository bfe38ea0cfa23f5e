'use strict';
exports.upper = (s) => String(s).toUpperCase();
exports.title = (s) => s.charAt(0).toUpperCase() + s.slice(1);
