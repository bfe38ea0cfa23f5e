'use strict';
// /usr/bin/env, mostly met as `#!/usr/bin/env node` in package bins. When the
// command is node, the script runs in this very process, so a package's bin
// costs one node start-up, not two; anything else is exec'd.

const fs = require('fs');
const path = require('path');

function main(args) {
  const env = { ...process.env };
  let i = 0;
  if (args[i] === '-i') { for (const k of Object.keys(env)) delete env[k]; i++; }
  for (; i < args.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(args[i]); i++) {
    const eq = args[i].indexOf('=');
    env[args[i].slice(0, eq)] = args[i].slice(eq + 1);
  }
  const command = args.slice(i);
  if (command.length === 0) {
    fs.writeSync(1, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
    return;
  }
  if (command[0] === 'node' && command[1] && !command[1].startsWith('-')) {
    for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
    Object.assign(process.env, env);
    process.argv = [process.execPath, path.resolve(command[1]), ...command.slice(2)];
    require('module').runMain();
    return;
  }
  const file = resolve(command[0], env.PATH ?? '/bin:/usr/bin');
  if (!file) { fs.writeSync(2, `env: ${command[0]}: No such file or directory\n`); process.exit(127); }
  const addon = require('./nodeos.node');
  try {
    addon.execve(file, command, Object.entries(env).map(([k, v]) => `${k}=${v}`));
  } catch (e) {
    fs.writeSync(2, `env: ${command[0]}: ${e.message}\n`);
    process.exit(126);
  }
}

function resolve(name, searchPath) {
  if (name.includes('/')) return name;
  for (const dir of searchPath.split(':')) {
    const candidate = path.join(dir || '.', name);
    try { fs.accessSync(candidate, fs.constants.X_OK); return candidate; } catch { /* next */ }
  }
  return null;
}

main(process.argv.slice(2));
