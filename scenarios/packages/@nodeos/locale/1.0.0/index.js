'use strict';
exports.language = 'en';
