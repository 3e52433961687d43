"""A webhook receiver for hookd, with Flask.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    HOOKD_WEBHOOK_SECRET=whsec_... .venv/bin/python receiver.py 3000

POST /webhooks verifies the signature over the raw body (Standard Webhooks when its
headers are there, else the hex header x-nextpay-signature / X-Webhook-Signature), drops
events it has handled before (by webhook-id), answers at once and prints one line per
delivery:

    verified payment_intent.paid evt_01... (standard-webhooks)
    duplicate evt_01...
    rejected: webhook-signature does not match this secret and body

The development server of `app.run` is for trying things out; behind real traffic run
the same app with a WSGI server (gunicorn, waitress).
"""
import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict

from flask import Flask, request

SECRET = os.environ["HOOKD_WEBHOOK_SECRET"]
# How far webhook-timestamp may be from now, either way: limits replays of a captured
# request.
TOLERANCE_SECONDS = 5 * 60
HEX_HEADERS = ("x-nextpay-signature", "x-webhook-signature")


class VerificationError(Exception):
    pass


def verify(headers, body: bytes) -> str:
    """Checks the signature of a delivery; returns the scheme that verified."""
    signatures = headers.get("webhook-signature")
    if signatures is not None:
        return verify_standard_webhooks(headers, body, signatures)
    for name in HEX_HEADERS:
        value = headers.get(name)
        if value is not None:
            # Keyed with the whole secret string, `whsec_` included.
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(value.strip().lower().encode(), expected.encode()):
                raise VerificationError(f"{name} does not match this secret and body")
            return name
    raise VerificationError("no signature header (webhook-signature, x-nextpay-signature)")


def verify_standard_webhooks(headers, body: bytes, signatures: str) -> str:
    msg_id = headers.get("webhook-id", "").strip()
    timestamp = headers.get("webhook-timestamp", "").strip()
    if not msg_id or not timestamp:
        raise VerificationError("webhook-signature without webhook-id and webhook-timestamp")
    if not timestamp.isdigit():
        raise VerificationError("webhook-timestamp is not unix seconds")
    try:
        # Keyed with the base64-decoded part after `whsec_`.
        key = base64.b64decode(SECRET.removeprefix("whsec_"), validate=True)
    except binascii.Error as err:
        raise VerificationError(f"the secret is not whsec_<base64>: {err}") from err
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # Several signatures during a secret rotation: any v1 one may match.
    if not any(
        hmac.compare_digest(entry[3:].encode(), expected)
        for entry in signatures.split()
        if entry.startswith("v1,")
    ):
        raise VerificationError("webhook-signature does not match this secret and body")
    # After the signature, so this error means a genuine but stale (or replayed) request.
    drift = int(time.time()) - int(timestamp)
    if abs(drift) > TOLERANCE_SECONDS:
        raise VerificationError(
            f"webhook-timestamp is {drift}s from now, outside the {TOLERANCE_SECONDS}s tolerance"
        )
    return "standard-webhooks"


class SeenEvents:
    """Event ids handled lately, at most `capacity`, least recently seen evicted first.
    In memory: a receiver with several processes, or that must not act twice across a
    restart, keeps them in its database (a unique key on the id)."""

    def __init__(self, capacity: int = 10_000):
        self._ids = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._ids:
                self._ids.move_to_end(event_id)
                return False
            self._ids[event_id] = None
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
            return True


app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
seen = SeenEvents()


def say(line: str) -> None:
    print(line, flush=True)


@app.post("/webhooks")
def webhooks():
    # The raw bytes, exactly as sent: a signature covers them, not re-serialized JSON.
    body = request.get_data()
    try:
        scheme = verify(request.headers, body)
    except VerificationError as err:
        # A 4xx is final for hookd: no retry of a delivery this receiver will never accept.
        say(f"rejected: {err}")
        return "invalid signature", 401
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        say("rejected: the body is not a hookd envelope")
        return "not a hookd envelope", 400
    # `typed` envelopes say {"type": …}, `event` ones {"event": …}.
    event_type = envelope.get("type") or envelope.get("event")
    # webhook-id is the event id on every delivery; the `typed` body has it too.
    event_id = request.headers.get("webhook-id") or envelope.get("id")
    if not event_type or not event_id:
        say("rejected: no event type or id")
        return "not a hookd envelope", 400
    if not seen.first_time(event_id):
        say(f"duplicate {event_id}")
        return "duplicate", 200
    # Real work goes to a queue here, so the answer is not held up by it.
    say(f"verified {event_type} {event_id} ({scheme})")
    return "ok", 200


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    app.run(host="127.0.0.1", port=port)
