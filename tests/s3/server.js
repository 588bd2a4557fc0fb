#!/usr/bin/env node
// Local S3 for luamr's tests: @20minutes/s3rver (it verifies SigV4; access key and secret
// are both "S3RVER"), plus AbortMultipartUpload, which s3rver lacks, so tests can check
// that an aborted upload leaves nothing behind.
//
//   node tests/s3/server.js [--port N] [--dir DIR] [--bucket NAME]...
// Prints "PORT <n>" once listening (port 0 or none = a free port) and exits when stdin
// closes or on SIGTERM/SIGINT, so a test harness that dies cannot leave it running.
// Run with NODE_OPTIONS=--openssl-legacy-provider (set below if missing).
'use strict';

if (!(process.env.NODE_OPTIONS || '').includes('--openssl-legacy-provider')) {
  const { spawnSync } = require('child_process');
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS || ''} --openssl-legacy-provider`.trim() };
  const r = spawnSync(process.execPath, process.argv.slice(1), { stdio: 'inherit', env });
  process.exit(r.status === null ? 1 : r.status);
}

const fs = require('fs');
const os = require('os');
const path = require('path');
const S3rver = require('@20minutes/s3rver');

function parseArgs(argv) {
  const opts = { port: 0, dir: null, buckets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--dir') opts.dir = argv[++i];
    else if (a === '--bucket') opts.buckets.push(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.buckets.length) opts.buckets.push('luamr-test');
  if (!opts.dir) opts.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luamr-s3rver-'));
  return opts;
}

// Runs after s3rver's own routing and authentication: a signed DELETE ?uploadId=X that
// s3rver rejects as MethodNotAllowed is an AbortMultipartUpload, done here.
function abortMultipartUpload(app) {
  return async function abortUpload(ctx, next) {
    try {
      await next();
    } catch (err) {
      const uploadId = ctx.query.uploadId;
      if (!(err.code === 'MethodNotAllowed' && ctx.method === 'DELETE' && uploadId)) throw err;
      if (!/^[0-9a-f]+$/.test(uploadId)) throw err;
      const bucket = ctx.path.split('/')[1];
      const dir = path.join(app.store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
      if (!fs.existsSync(dir)) throw err;
      fs.rmSync(dir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
    }
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.dir, { recursive: true });
  const app = new S3rver({
    address: '127.0.0.1',
    port: opts.port,
    directory: opts.dir,
    silent: true,
    configureBuckets: opts.buckets.map((name) => ({ name })),
  });
  app.middleware.unshift(abortMultipartUpload(app));
  const addr = await app.run();
  process.stdout.write(`PORT ${addr.port}\n`);

  const stop = () => {
    app.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write(`s3 test server: ${err.stack || err}\n`);
  process.exit(1);
});
