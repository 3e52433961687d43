"""A webhook receiver written the way seed 000's Flask example verifies, with only the
standard library: HMAC-SHA256 hex of the raw body, keyed with the webhook secret.

    NEXTPAY_WEBHOOK_SECRET=whsec_... python3 examples/receiver.py 3000
"""
import hashlib
import hmac
import http.server
import json
import os
import sys

WEBHOOK_SECRET = os.environ["NEXTPAY_WEBHOOK_SECRET"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        payload = self.rfile.read(int(self.headers.get("content-length", 0)))
        signature = self.headers.get("x-nextpay-signature") or ""
        expected = hmac.new(WEBHOOK_SECRET.encode(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"Invalid signature")
            return
        event = json.loads(payload)
        print(f"Received event: {event['type']} {event['id']}", flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
