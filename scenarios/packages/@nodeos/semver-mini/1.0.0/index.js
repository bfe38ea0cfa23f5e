'use strict';
exports.major = (v) => Number(String(v).split('.')[0]);
