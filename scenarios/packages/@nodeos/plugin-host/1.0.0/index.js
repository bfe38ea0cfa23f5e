'use strict';
const plugins = [];
exports.register = (p) => { plugins.push(p); return plugins.length; };
exports.plugins = plugins;
