#!/usr/bin/env node
// Fault-injecting HTTP proxy for luamr's S3 tests. It sits in front of the test server
// (clients use it as their S3 endpoint; the Host header is passed through unchanged, so
// SigV4 signatures still verify) and, deterministically for a given seed:
//   - answers a share of requests with 503 SlowDown (without forwarding them),
//   - cuts a share of successful GET response bodies halfway (headers promise the full
//     length, half the bytes arrive, then the connection is destroyed),
//   - with --rate-kbps N, sends each response body no faster than N KiB/s: the per-connection
//     throughput cap of real S3 (50-90 MB/s), which parallel ranged GETs get around.
//
//   node tests/s3/faultproxy.js --target PORT [--port N] [--seed S]
//                               [--slowdown 0.1] [--cut 0.1] [--rate-kbps 0]
//                               [--bucket-region R]
// With --bucket-region every request gets what S3 answers when a bucket lives in another
// region than the one signed for: 301 PermanentRedirect with x-amz-bucket-region: R.
// Prints "PORT <n>" once listening; exits when stdin closes or on SIGTERM/SIGINT.
// GET /__faultproxy/stats answers {"requests":..,"slowdowns":..,"cuts":..,"openCuts":..,
// "parts":..,"gets":..,"maxInflight":..} (not forwarded). parts counts UploadPart requests
// (PUT with partNumber), so a test can tell that an object went up as a multipart upload
// (s3rver's ETags do not show it); openCuts counts the cuts of GETs with no Range or an
// open-ended one ("bytes=N-"), which a client that reads only the start of such an answer
// never sees; gets counts GETs and maxInflight the most GETs answered at once.
'use strict';

const http = require('http');

function parseArgs(argv) {
  const o = { target: 0, port: 0, seed: 1, slowdown: 0.1, cut: 0.1, rateKBps: 0, bucketRegion: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--target') o.target = Number(v);
    else if (a === '--port') o.port = Number(v);
    else if (a === '--seed') o.seed = Number(v);
    else if (a === '--slowdown') o.slowdown = Number(v);
    else if (a === '--cut') o.cut = Number(v);
    else if (a === '--rate-kbps') o.rateKBps = Number(v);
    else if (a === '--bucket-region') o.bucketRegion = v;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.target) throw new Error('--target PORT is required');
  return o;
}

// mulberry32: a small seeded PRNG, so a run's faults can be replayed exactly.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const opts = parseArgs(process.argv.slice(2));
const random = prng(opts.seed);
const stats = { requests: 0, slowdowns: 0, cuts: 0, openCuts: 0, parts: 0, gets: 0, inflight: 0, maxInflight: 0 };
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function slowDown(req, res) {
  req.resume();
  req.on('end', () => {
    const body =
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>' +
      '<Message>Please reduce your request rate.</Message>' +
      `<RequestId>FAULT${stats.requests}</RequestId></Error>`;
    res.writeHead(503, {
      'Content-Type': 'application/xml',
      'Content-Length': Buffer.byteLength(body),
      'x-amz-request-id': `FAULT${stats.requests}`,
    });
    res.end(body);
  });
}

function wrongRegion(req, res) {
  req.resume();
  req.on('end', () => {
    const body =
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>' +
      '<Message>The bucket you are attempting to access must be addressed using the ' +
      'specified endpoint. Please send all future requests to this endpoint.</Message>' +
      `<Endpoint>s3.${opts.bucketRegion}.amazonaws.com</Endpoint>` +
      `<RequestId>REGION${stats.requests}</RequestId></Error>`;
    res.writeHead(301, {
      'Content-Type': 'application/xml',
      'Content-Length': req.method === 'HEAD' ? 0 : Buffer.byteLength(body),
      'x-amz-bucket-region': opts.bucketRegion,
      'x-amz-request-id': `REGION${stats.requests}`,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}

// Copies a response body: at most `limit` bytes, then the connection is dropped (a cut),
// and with --rate-kbps no faster than that, paced against the response's start so that
// timer slack does not add up.
function forward(upRes, res, limit) {
  const rate = opts.rateKBps * 1024;
  const start = Date.now();
  let sent = 0;
  res.on('close', () => upRes.destroy());   // the client went away: stop reading upstream
  upRes.on('data', (chunk) => {
    if (sent >= limit) return;
    const part = chunk.length <= limit - sent ? chunk : chunk.subarray(0, limit - sent);
    sent += part.length;
    const drained = res.write(part);
    if (sent >= limit) {
      upRes.destroy();
      // Let the half body leave before the connection drops.
      res.socket.end(() => res.socket.destroy());
      setTimeout(() => res.socket && res.socket.destroy(), 200).unref();
      return;
    }
    const wait = rate ? start + (sent / rate) * 1000 - Date.now() : 0;
    if (wait <= 0 && drained) return;
    upRes.pause();
    let pending = (wait > 0 ? 1 : 0) + (drained ? 0 : 1);
    const go = () => { if (--pending === 0) upRes.resume(); };
    if (wait > 0) setTimeout(go, wait);
    if (!drained) res.once('drain', go);
  });
  upRes.on('end', () => { if (sent < limit) res.end(); });
}

const server = http.createServer((req, res) => {
  if (req.url === '/__faultproxy/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests++;
  if (req.method === 'GET') {
    stats.gets++;
    stats.maxInflight = Math.max(stats.maxInflight, ++stats.inflight);
    res.on('close', () => stats.inflight--);
  }
  if (req.method === 'PUT' && /[?&]partNumber=/.test(req.url)) stats.parts++;
  if (opts.bucketRegion) {
    wrongRegion(req, res);
    return;
  }
  // Both draws happen for every request, so the sequence does not depend on responses.
  const slow = random() < opts.slowdown;
  const cut = random() < opts.cut;
  if (slow) {
    stats.slowdowns++;
    slowDown(req, res);
    return;
  }
  const up = http.request(
    {
      host: '127.0.0.1',
      port: opts.target,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    },
    (upRes) => {
      const length = Number(upRes.headers['content-length'] || 0);
      const cuttable =
        cut && req.method === 'GET' && (upRes.statusCode === 200 || upRes.statusCode === 206) && length >= 2;
      res.writeHead(upRes.statusCode, upRes.headers);
      if (!cuttable && !opts.rateKBps) {
        upRes.pipe(res);
        return;
      }
      const open = !req.headers.range || /^bytes=\d+-$/.test(req.headers.range);
      if (cuttable) {
        stats.cuts++;
        if (open) stats.openCuts++;
      }
      forward(upRes, res, cuttable ? Math.floor(length / 2) : Infinity);
    },
  );
  up.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});

server.keepAliveTimeout = 30000;
server.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

const stop = () => {
  process.stderr.write(`faultproxy: ${JSON.stringify(stats)}\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
