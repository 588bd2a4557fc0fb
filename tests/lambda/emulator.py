#!/usr/bin/env python3
"""A Lambda emulator for luamr's tests: the Invoke API (SigV4-verified) and, per execution
environment, the Runtime API, running the `bootstrap` of a deployment zip unzipped into an
empty folder, in a clean environment, the way provided.al2023 does.

    python3 tests/lambda/emulator.py --zip function.zip [--function NAME] [--port N]
        [--memory MB] [--timeout S] [--concurrency N] [--throttle-first N]
        [--crash-first-attempt] [--log FILE]

Prints "PORT <n>" once listening and runs until stdin closes or SIGTERM/SIGINT, so a test
that dies cannot leave it (or its bootstrap processes) behind.

Faults, for the retry tests:
  --throttle-first N      the first N invocations get 429 TooManyRequestsException
  --crash-first-attempt   the first attempt of every task (same event) kills its runtime
                          process mid-invocation: Runtime.ExitError, as after an OOM
A task still running at the function timeout is killed: Sandbox.Timedout, as Lambda does.

GET /stats (unsigned) answers counters, the cold starts (process start to its first GET
of /runtime/invocation/next, in ms) and the scratch files left in each environment's /tmp.
Only the Python standard library is used.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCESS_KEY = os.environ.get("LAMBDA_EMULATOR_ACCESS_KEY", "S3RVER")
SECRET_KEY = os.environ.get("LAMBDA_EMULATOR_SECRET_KEY", "S3RVER")
PASS_ENV_PREFIXES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_ENDPOINT_URL", "LUAMR_")


def log(msg):
    sys.stderr.write("emulator: %s\n" % msg)
    sys.stderr.flush()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.invocations = 0
        self.throttled = 0
        self.crashed = 0
        self.timeouts = 0
        self.function_errors = 0
        self.cold_starts_ms = []
        self.scratch_left = []
        self.environments = 0
        self.bad_signatures = 0

    def as_dict(self):
        with self.lock:
            return {k: v for k, v in self.__dict__.items() if k != "lock"}


# ---------------------------------------------------------------- SigV4 verification

def uri_encode(s, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def verify_sigv4(method, raw_path, headers, body):
    """Returns None when the Authorization header is right, else why not. Non-S3 services
    sign the path encoded twice: each segment of the path as sent is encoded again."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        ak, date, region, service, term = fields["Credential"].split("/")
    except (KeyError, ValueError):
        return "malformed Credential"
    if ak != ACCESS_KEY:
        return "unknown access key %s" % ak
    if service != "lambda" or term != "aws4_request":
        return "credential scope %s/%s is not lambda/aws4_request" % (service, term)
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return "x-amz-date %s does not match the scope date %s" % (amz_date, date)
    path, _, query = raw_path.partition("?")
    canon_uri = "/".join(uri_encode(seg, False) for seg in path.split("/"))
    pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    canon_query = "&".join("%s=%s" % (uri_encode(k, False), uri_encode(v, False)) for k, v in pairs)
    signed = fields.get("SignedHeaders", "").split(";")
    if "host" not in signed:
        return "host is not signed"
    canon_headers = "".join("%s:%s\n" % (h, " ".join((headers.get(h) or "").split())) for h in signed)
    canon = "\n".join([method, canon_uri, canon_query, canon_headers, ";".join(signed),
                       hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join([date, region, service, term]),
                     hashlib.sha256(canon.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, region, service, term):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, fields.get("Signature", "")):
        return "signature mismatch; canonical request was:\n" + canon
    return None


# ---------------------------------------------------------------- execution environments

class Invocation:
    def __init__(self, payload, timeout):
        self.id = str(uuid.uuid4())
        self.payload = payload
        self.deadline = time.time() + timeout
        self.done = threading.Event()
        self.status = None        # "ok" | "error"
        self.body = b""
        self.error_type = ""
        self.log_start = 0
        self.crash = False        # kill the runtime once it has taken this invocation


class Environment:
    """One bootstrap process and its own Runtime API endpoint."""

    def __init__(self, emu, number):
        self.emu = emu
        self.number = number
        self.busy = False
        self.dead = False
        self.inbox = queue.Queue()
        self.current = None
        self.lines = []
        self.first_next = None
        self.tmp = tempfile.mkdtemp(prefix="luamr-lambda-tmp-")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_runtime_handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": emu.task_root,
            "LAMBDA_RUNTIME_DIR": emu.task_root,
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % self.server.server_address[1],
            "AWS_LAMBDA_FUNCTION_NAME": emu.args.function,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(emu.args.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + emu.args.function,
            "AWS_REGION": emu.args.region,
            "AWS_DEFAULT_REGION": emu.args.region,
            "_HANDLER": "bootstrap",
            "TMPDIR": self.tmp,   # stands for the environment's own /tmp
        }
        for k, v in os.environ.items():
            if k.startswith(PASS_ENV_PREFIXES):
                env[k] = v
        self.started = time.monotonic()
        self.proc = subprocess.Popen([os.path.join(emu.task_root, "bootstrap")], cwd=emu.task_root,
                                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self.pump_output, daemon=True).start()
        threading.Thread(target=self.watch_exit, daemon=True).start()

    def pump_output(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self.emu.write_log("[env %d] %s" % (self.number, line))

    def watch_exit(self):
        code = self.proc.wait()
        self.dead = True
        inv = self.current
        if inv is None:   # died before taking its invocation (a crash during init)
            try:
                inv = self.inbox.get_nowait()
            except queue.Empty:
                inv = None
        if inv and not inv.done.is_set():
            how = "signal: killed" if code < 0 else "exit status %d" % code
            self.finish(inv, "error", json.dumps({
                "errorType": "Runtime.ExitError",
                "errorMessage": "RequestId: %s Error: Runtime exited with error: %s" % (inv.id, how)}).encode(),
                "Runtime.ExitError")

    def finish(self, inv, status, body, error_type=""):
        if inv.done.is_set():
            return
        inv.status, inv.body, inv.error_type = status, body, error_type
        inv.done.set()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.dead = True

    def close(self):
        self.kill()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scratch_left(self):
        left = []
        for root, dirs, files in os.walk(self.tmp):
            left += [os.path.join(root, n) for n in dirs + files]
        return left


def make_runtime_handler(env):
    class RuntimeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, status, body=b"{}", headers=None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/2018-06-01/runtime/invocation/next":
                return self.reply(404, b'{"errorMessage":"unknown path"}')
            if env.first_next is None:
                env.first_next = time.monotonic()
                ms = (env.first_next - env.started) * 1000
                with env.emu.stats.lock:
                    env.emu.stats.cold_starts_ms.append(round(ms, 2))
            inv = env.inbox.get()   # Lambda freezes the process here; we simply wait
            if inv is None:
                return self.reply(500, b'{"errorMessage":"shutting down"}')
            env.current = inv
            inv.log_start = len(env.lines)
            self.reply(200, inv.payload, {
                "Lambda-Runtime-Aws-Request-Id": inv.id,
                "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn":
                    "arn:aws:lambda:%s:123456789012:function:%s" % (env.emu.args.region, env.emu.args.function),
                "Lambda-Runtime-Trace-Id": "Root=1-%08x-%s" % (int(time.time()), inv.id.replace("-", "")[:24]),
            })
            if inv.crash:   # as soon as it has the event: it dies mid-invocation
                env.kill()

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            parts = self.path.split("/")
            if self.path == "/2018-06-01/runtime/init/error":
                env.emu.write_log("[env %d] init error %s: %s" % (
                    env.number, self.headers.get("Lambda-Runtime-Function-Error-Type"), body.decode()))
                self.reply(202)
                env.kill()
                return
            # /2018-06-01/runtime/invocation/{id}/(response|error)
            if len(parts) != 6 or parts[3] != "invocation" or parts[5] not in ("response", "error"):
                return self.reply(404, b'{"errorMessage":"unknown path"}')
            inv = env.current
            if not inv or inv.id != parts[4]:
                return self.reply(400, b'{"errorMessage":"no such invocation","errorType":"InvalidRequestID"}')
            if inv.done.is_set():
                return self.reply(410, b'{"errorMessage":"invocation timed out"}')
            if parts[5] == "response":
                env.finish(inv, "ok", body)
            else:
                env.finish(inv, "error", body, self.headers.get("Lambda-Runtime-Function-Error-Type", "Unhandled"))
            self.reply(202, b'{"status":"OK"}')

    return RuntimeHandler


# ---------------------------------------------------------------- the Invoke API

class Emulator:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.lock = threading.Lock()
        self.envs = []
        self.seen_events = set()
        self.log_file = open(args.log, "a") if args.log else None
        self.task_root = tempfile.mkdtemp(prefix="luamr-lambda-task-")
        with zipfile.ZipFile(args.zip) as z:
            for info in z.infolist():
                path = z.extract(info, self.task_root)
                mode = (info.external_attr >> 16) & 0o7777
                if mode:
                    os.chmod(path, mode)

    def write_log(self, line):
        if self.log_file:
            with self.lock:
                self.log_file.write(line + "\n")
                self.log_file.flush()

    def acquire_environment(self):
        """An idle environment, a new one, or None when at the concurrency limit."""
        with self.lock:
            self.envs = [e for e in self.envs if not e.dead]
            for e in self.envs:
                if not e.busy:
                    e.busy = True
                    return e
            if len(self.envs) >= self.args.concurrency:
                return None
            self.stats.environments += 1
            e = Environment(self, self.stats.environments)
            e.busy = True
            self.envs.append(e)
            return e

    def invoke(self, payload):
        """Returns (status, headers, body)."""
        with self.stats.lock:
            self.stats.invocations += 1
            throttle = self.stats.invocations <= self.args.throttle_first
            if throttle:
                self.stats.throttled += 1
        if throttle:
            return throttled()
        env = self.acquire_environment()
        if env is None:
            with self.stats.lock:
                self.stats.throttled += 1
            return throttled()
        crash = False
        if self.args.crash_first_attempt:
            with self.lock:
                crash = payload not in self.seen_events
                self.seen_events.add(payload)
        inv = Invocation(payload, self.args.timeout)
        inv.crash = crash
        started = time.monotonic()
        env.inbox.put(inv)
        if not inv.done.wait(self.args.timeout):
            env.finish(inv, "error", json.dumps({
                "errorType": "Sandbox.Timedout",
                "errorMessage": "RequestId: %s Error: Task timed out after %.2f seconds" % (inv.id, self.args.timeout)}).encode(),
                "Sandbox.Timedout")
            env.kill()
            with self.stats.lock:
                self.stats.timeouts += 1
        inv.done.wait()
        elapsed_ms = (time.monotonic() - started) * 1000
        if inv.error_type == "Runtime.ExitError":
            with self.stats.lock:
                self.stats.crashed += 1
        elif inv.status == "error" and inv.error_type != "Sandbox.Timedout":
            with self.stats.lock:
                self.stats.function_errors += 1
        time.sleep(0.02)   # let the runtime finish its logging and cleanup before we look
        left = env.scratch_left() if not env.dead else []
        if left:
            with self.stats.lock:
                self.stats.scratch_left += left
        tail = env.lines[inv.log_start:]
        with self.lock:
            if env.dead:
                env.close()
            env.busy = False
        report = ("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\t"
                  "Max Memory Used: 1 MB\t\n" % (inv.id, elapsed_ms, int(elapsed_ms) + 1, self.args.memory))
        text = "START RequestId: %s Version: $LATEST\n%s\nEND RequestId: %s\n%s" % (
            inv.id, "\n".join(tail), inv.id, report)
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": inv.id,
                   "X-Amz-Log-Result": base64.b64encode(text.encode()[-4096:]).decode()}
        if inv.status == "error":
            headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, inv.body

    def close(self):
        with self.lock:
            envs, self.envs = self.envs, []
        for e in envs:
            e.inbox.put(None)
            e.close()
        shutil.rmtree(self.task_root, ignore_errors=True)


def throttled():
    return 429, {"x-amzn-ErrorType": "TooManyRequestsException"}, json.dumps({
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User", "message": "Rate Exceeded."}).encode()


def make_api_handler(emu):
    class ApiHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, status, headers, body):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, etype, message):
            self.reply(status, {"x-amzn-ErrorType": etype},
                       json.dumps({"Type": "User", "message": message}).encode())

        def function_of(self, path):
            # /2015-03-31/functions/{name}/(invocations|configuration)
            parts = path.split("?")[0].split("/")
            if len(parts) != 5 or parts[1] != "2015-03-31" or parts[2] != "functions":
                return None, None
            name = urllib.parse.unquote(parts[3])
            if name.startswith("arn:"):
                bits = name.split(":")
                name = bits[6] if len(bits) >= 7 else name
            return name, parts[4]

        def handle_api(self, method):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if method == "GET" and self.path == "/stats":
                return self.reply(200, {}, json.dumps(emu.stats.as_dict()).encode())
            headers = {k.lower(): v for k, v in self.headers.items()}
            why = verify_sigv4(method, self.path, headers, body)
            if why:
                with emu.stats.lock:
                    emu.stats.bad_signatures += 1
                log("rejected %s %s: %s" % (method, self.path, why))
                return self.error(403, "InvalidSignatureException", why.splitlines()[0])
            name, what = self.function_of(self.path)
            if name != emu.args.function:
                return self.error(404, "ResourceNotFoundException",
                                  "Function not found: arn:aws:lambda:%s:123456789012:function:%s" % (emu.args.region, name))
            if method == "GET" and what == "configuration":
                return self.reply(200, {}, json.dumps({
                    "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
                    "MemorySize": emu.args.memory, "Timeout": int(emu.args.timeout),
                    "Architectures": ["x86_64"], "EphemeralStorage": {"Size": 512}}).encode())
            if method == "POST" and what == "invocations":
                itype = headers.get("x-amz-invocation-type", "RequestResponse")
                if itype != "RequestResponse":
                    return self.error(400, "InvalidParameterValueException", "only RequestResponse is emulated")
                status, h, out = emu.invoke(body)
                return self.reply(status, h, out)
            return self.error(400, "InvalidRequestContentException", "unsupported %s %s" % (method, self.path))

        def do_GET(self):
            self.handle_api("GET")

        def do_POST(self):
            self.handle_api("POST")

    return ApiHandler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zip", required=True)
    p.add_argument("--function", default="luamr")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--memory", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--throttle-first", type=int, default=0)
    p.add_argument("--crash-first-attempt", action="store_true")
    p.add_argument("--log")
    args = p.parse_args()
    emu = Emulator(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_api_handler(emu))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    stop.wait()
    server.shutdown()
    emu.close()


if __name__ == "__main__":
    main()
