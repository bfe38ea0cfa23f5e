#!/usr/bin/env node
'use strict';
const { createApp } = require('..');

const port = Number(process.env.PORT || 8080);
createApp().listen(port, '0.0.0.0', () => console.log(`webapp 1.0.0 listening on 0.0.0.0:${port}`));
