'use strict';
exports.now = () => new Date().toISOString();
