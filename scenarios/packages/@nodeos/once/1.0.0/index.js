'use strict';
module.exports = (fn) => { let done = false, value; return (...a) => done ? value : (done = true, value = fn(...a)); };
