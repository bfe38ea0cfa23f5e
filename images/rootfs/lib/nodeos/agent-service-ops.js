'use strict';
// The agent's operations on the configuration's services (services.js) and
// on the guest's TCP ports.

const fs = require('fs');
const { RequestError, field } = require('./agent');

// services() is init's services controller, or null before they started.
function makeServiceOps({ services }) {
  const controller = () => {
    const c = services();
    if (!c) throw new RequestError('EAGAIN', 'the services have not been started yet');
    return c;
  };
  const named = (message) => field.required(message, 'name', 'string');
  return {
    services: async () => ({ services: services()?.list() ?? [] }),
    serviceStop: async (message) => controller().stop(named(message)),
    serviceStart: async (message) => controller().start(named(message)),
    serviceRestart: async (message) => controller().restart(named(message)),
    async listening(message) {
      const port = field.required(message, 'port', 'integer');
      if (port < 1 || port > 65535) throw new RequestError('EINVAL', 'port: expected an integer 1..65535');
      const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((f) => fs.promises.readFile(f, 'utf8').catch(() => '')));
      return { listening: tables.some((text) => listensOn(text, port)) };
    },
  };
}

// Whether a /proc/net/tcp{,6} table has a socket in LISTEN (0A) on port, any address.
function listensOn(text, port) {
  for (const line of text.split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === '0A' && local && parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) return true;
  }
  return false;
}

module.exports = { makeServiceOps, listensOn };
