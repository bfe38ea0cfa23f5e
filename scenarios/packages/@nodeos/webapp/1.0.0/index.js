'use strict';
// The routes of `webapp` (README.md in scenarios/packages).
const http = require('http');
const os = require('os');
const { greet } = require('@nodeos/greeting');

const VERSION = require('./package.json').version;
const MAX_BYTES = 64 * 1024 * 1024;
const started = Date.now();

function text(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(body);
}

// n bytes of 'x', 64 KiB at a time, as fast as the client reads them.
function streamBytes(res, n) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  const chunk = Buffer.alloc(Math.min(n, 65536), 'x');
  let left = n;
  const more = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) return res.once('drain', more);
    }
    res.end();
  };
  more();
}

// The request a client asked this machine to make for it, answered as it came back.
function proxy(res, target) {
  let url;
  try { url = new URL(target); } catch { return text(res, 400, `bad url: ${JSON.stringify(target)}\n`); }
  if (url.protocol !== 'http:') return text(res, 400, `only http: urls, got ${url.protocol}\n`);
  const request = http.get(url, { timeout: 10_000 }, (upstream) => {
    res.writeHead(upstream.statusCode, { 'content-type': upstream.headers['content-type'] ?? 'application/octet-stream' });
    upstream.pipe(res);
  });
  request.on('timeout', () => request.destroy(Object.assign(new Error('timed out after 10 s'), { code: 'ETIMEDOUT' })));
  request.on('error', (e) => {
    if (res.headersSent) return res.destroy();
    text(res, 502, `proxy to ${url.href} failed: ${e.code ?? ''} ${e.message}\n`.replace(/: {2}/, ': '));
  });
}

function createApp() {
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/') {
      return text(res, 200, `${greet('from webapp').replace(/^Hello, (.*)!$/, 'hello $1')} ${VERSION} on ${os.hostname()}\n`);
    }
    if (req.method === 'GET' && url.pathname === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ ok: true, pid: process.pid, uptimeMs: Date.now() - started }));
    }
    if (req.method === 'GET' && url.pathname === '/bytes') {
      const n = Number(url.searchParams.get('n'));
      if (!Number.isInteger(n) || n < 0 || n > MAX_BYTES) return text(res, 400, `n: expected an integer 0..${MAX_BYTES}\n`);
      return streamBytes(res, n);
    }
    if (req.method === 'POST' && url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
      return req.pipe(res);
    }
    if (req.method === 'GET' && url.pathname === '/proxy') return proxy(res, url.searchParams.get('url'));
    text(res, 404, `not found: ${req.method} ${url.pathname}\n`);
  });
}

module.exports = { createApp, VERSION };
