'use strict';
exports.version = '1.1.0';
