"""The example receivers against a real hookd (run by .ci/examples, which installs their
dependencies first).

Starts `hookd serve` on a fresh SQLite file, and for every receiver two instances: one
behind a webhook of the `typed` format, one behind an `event`-format webhook (each with
its own secret). Then, for every instance:

- two events published with `hookd send` (sample data, and --data) arrive verified,
  once each;
- the same event replayed by hookd is printed as a duplicate and answered 2xx;
- hookd's own attempt, re-sent with one byte of the body changed, is refused (401);
- a request signed an hour ago (a replayed capture) is refused (401);
- a request signed with the hex header alone (x-nextpay-signature or
  X-Webhook-Signature) is verified;

and hookd records every delivery as succeeded. Prints one line per check and
"examples: N passed, M failed"; exits 1 on any failure, with the receivers' output.

    python3 .ci/examples.py --hookd target/debug/hookd --work DIR \
        --receiver rust=target/debug/hookd-example-axum \
        --receiver "python=.venv/bin/python examples/python-flask/receiver.py" ...
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

# Longest wait for something that takes milliseconds when all is well.
PATIENCE = 30.0


class Process:
    """A child process whose stdout lines are collected as they come."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for_line(self, predicate, what):
        deadline = time.monotonic() + PATIENCE
        with self._cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} never printed {what}")
                self._cond.wait(min(left, 0.5))

    def count(self, predicate):
        with self._cond:
            return sum(1 for line in self.lines if predicate(line))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, process):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise AssertionError(f"{process.name} exited: {process.lines[-5:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{process.name} never listened on {port}")


def http(method, url, body=None, headers=None, auth=None):
    """(status, body bytes) of one request; never raises for an HTTP status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Hookd:
    def __init__(self, binary, work):
        self.binary = binary
        database = f"sqlite://{work}/hookd.db"
        created = subprocess.run(
            [binary, "clients", "create", "--name", "examples", "--json", "--database", database],
            check=True,
            capture_output=True,
            text=True,
        )
        client = json.loads(created.stdout)
        self.auth = (client["client_id"], client["client_secret"])
        self.process = Process(
            "hookd",
            [binary, "serve", "--listen", "127.0.0.1:0", "--database", database,
             "--allow-http", "--allow-private-targets", "--retry-schedule", "0s,200ms,400ms"],
            env={"HOOKD_LOG": "warn"},
        )
        first = self.process.wait_for_line(lambda l: l.startswith("hookd listening on "), "its address")
        self.base = first.removeprefix("hookd listening on ").strip()

    def api(self, method, path, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        status, answer = http(method, self.base + path, body,
                              {"content-type": "application/json"}, self.auth)
        return status, json.loads(answer) if answer else None

    def send(self, *args):
        """`hookd send` with the server and client from the environment; the event id."""
        env = {**os.environ, "HOOKD_SERVER": self.base,
               "HOOKD_CLIENT_ID": self.auth[0], "HOOKD_CLIENT_SECRET": self.auth[1]}
        done = subprocess.run([self.binary, "send", *args, "--json"], env=env,
                              capture_output=True, text=True, timeout=PATIENCE)
        if done.returncode != 0:
            raise AssertionError(f"hookd send {args}: {done.stderr.strip()}")
        return json.loads(done.stdout)["id"]


class Instance:
    """One receiver process behind one webhook."""

    def __init__(self, hookd, name, command, envelope_format, work):
        self.name = f"{name}/{envelope_format}"
        self.format = envelope_format
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks"
        status, webhook = hookd.api("POST", "/v2/webhooks", {
            "url": self.url, "events": ["*"], "format": envelope_format,
            "description": f"examples: {self.name}",
        })
        assert status == 201, webhook
        self.webhook_id = webhook["id"]
        self.secret = webhook["secret"]
        self.hex_header = webhook["signature_header"]
        self.process = Process(self.name, [*shlex.split(command), str(self.port)], env={
            "HOOKD_WEBHOOK_SECRET": self.secret,
            "LEDGER_DB": os.path.join(work, f"ledger-{name}-{envelope_format}.db"),
        })

    def body_for(self, event_id, event_type):
        if self.format == "typed":
            envelope = {"id": event_id, "created": int(time.time()), "type": event_type,
                        "data": {"amount": 1}}
        else:
            envelope = {"event": event_type, "data": {"amount": 1}}
        return json.dumps(envelope, separators=(",", ":")).encode()

    def standard_headers(self, event_id, timestamp, body):
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{event_id}.{timestamp}.".encode() + body
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": f"v1,{signature}", "content-type": "application/json"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hookd", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--receiver", action="append", required=True,
                        help="NAME=COMMAND (the port is appended)")
    args = parser.parse_args()

    results = []
    processes = []

    def check(name, action):
        try:
            action()
            results.append(True)
            print(f"ok     {name}", flush=True)
        except Exception as err:  # report every check, then fail
            results.append(False)
            print(f"FAILED {name}: {err}", flush=True)

    hookd = Hookd(args.hookd, args.work)
    processes.append(hookd.process)
    try:
        instances = []
        for spec in args.receiver:
            name, command = spec.split("=", 1)
            for envelope_format in ("typed", "event"):
                instance = Instance(hookd, name, command, envelope_format, args.work)
                instances.append(instance)
                processes.append(instance.process)
        for instance in instances:
            wait_for_port(instance.port, instance.process)

        paid = hookd.send("--type", "payment_intent.paid")
        payout = hookd.send("--type", "payout_request.completed", "--data",
                            '{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed"}')

        for instance in instances:
            def arrived(instance=instance):
                for event_id, event_type in ((paid, "payment_intent.paid"),
                                             (payout, "payout_request.completed")):
                    expected = f"verified {event_type} {event_id} (standard-webhooks)"
                    instance.process.wait_for_line(lambda l: l == expected, repr(expected))
            check(f"{instance.name}: events from hookd send arrive verified", arrived)

        for instance in instances:
            def succeeded(instance=instance):
                for event_id in (paid, payout):
                    deadline = time.monotonic() + PATIENCE
                    while True:
                        _, event = hookd.api("GET", f"/v2/events/{event_id}")
                        states = {d["webhook_id"]: d["status"] for d in event["deliveries"]}
                        if states.get(instance.webhook_id) == "succeeded":
                            break
                        assert time.monotonic() < deadline, f"{event_id}: {states}"
                        time.sleep(0.05)
            check(f"{instance.name}: hookd records the deliveries as succeeded", succeeded)

        status, replayed = hookd.api("POST", f"/v2/events/{paid}/replay", {})
        assert status == 202 or status == 200, replayed
        for instance in instances:
            def duplicate(instance=instance):
                instance.process.wait_for_line(lambda l: l == f"duplicate {paid}", "the duplicate")
                assert instance.process.count(lambda l: l.startswith(f"verified payment_intent.paid {paid}")) == 1
            check(f"{instance.name}: a replayed event is a duplicate", duplicate)

        attempts = hookd.api("GET", f"/v2/events/{payout}/attempts")[1]["data"]
        for instance in instances:
            def tampered(instance=instance):
                attempt = next(a for a in attempts if a["webhook_id"] == instance.webhook_id)
                body = bytearray(attempt["request_body"].encode())
                body[-3] ^= 0x01
                headers = {k: v for k, v in attempt["request_headers"].items()
                           if k != "content-length"}
                status, _ = http("POST", instance.url, bytes(body), headers)
                assert status == 401, status
                instance.process.wait_for_line(
                    lambda l: l.startswith("rejected:") and "webhook-signature" in l,
                    "the rejection")
                # hookd's own bytes, untouched, are still accepted (as a duplicate).
                status, _ = http("POST", instance.url, attempt["request_body"].encode(), headers)
                assert status == 200, status
            check(f"{instance.name}: hookd's request with one body byte changed is refused", tampered)

            def stale(instance=instance):
                event_id = f"evt_stale_{instance.port}"
                body = instance.body_for(event_id, "payment.completed")
                headers = instance.standard_headers(event_id, int(time.time()) - 3600, body)
                status, _ = http("POST", instance.url, body, headers)
                assert status == 401, status
                instance.process.wait_for_line(
                    lambda l: l.startswith("rejected:") and "webhook-timestamp" in l,
                    "the stale rejection")
            check(f"{instance.name}: a request signed an hour ago is refused", stale)

            def hex_only(instance=instance):
                event_id = f"evt_hex_{instance.port}"
                body = instance.body_for(event_id, "payment.completed")
                signature = hmac.new(instance.secret.encode(), body, hashlib.sha256).hexdigest()
                headers = {instance.hex_header: signature, "webhook-id": event_id,
                           "content-type": "application/json"}
                status, _ = http("POST", instance.url, body, headers)
                assert status == 200, status
                expected = f"verified payment.completed {event_id} ({instance.hex_header.lower()})"
                instance.process.wait_for_line(lambda l: l == expected, repr(expected))
            check(f"{instance.name}: the hex header alone ({instance.hex_header}) verifies", hex_only)
    except Exception as err:
        results.append(False)
        print(f"FAILED setting up: {err}", flush=True)
    finally:
        for process in processes:
            process.stop()

    passed = sum(results)
    failed = len(results) - passed
    if failed:
        for process in processes:
            print(f"--- output of {process.name} ---")
            print("\n".join(process.lines[-40:]))
    print(f"examples: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
