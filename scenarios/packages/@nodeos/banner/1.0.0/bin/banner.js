#!/usr/bin/env node
'use strict';
console.log(require('..').banner(process.argv.slice(2).join(' ') || 'NodeOS'));
