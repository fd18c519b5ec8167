"""The end-to-end test's webhook receiver: verifies every request with the Standard Webhooks
reference library (PyPI standardwebhooks), answers by a per-path script, and logs each request.

Usage: receiver.py <host> <state dir>. Prints the port it listens on, then serves until killed.
The test writes <state dir>/secrets.json ({"/path": ["whsec_...", ...]}) and
<state dir>/script.json ({"/path": [500, 500]}: the statuses of the next requests to that path;
200 once they are spent), and reads <state dir>/log.jsonl, one line per request:
{"path", "webhook_id", "type", "status", "verified": [true|false per secret], "signatures"}.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

host, state = sys.argv[1], sys.argv[2]
lock = threading.Lock()
answered = {}


def load(name):
    try:
        with open(os.path.join(state, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for secret in load("secrets.json").get(path, []):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        with lock:
            n = answered.get(path, 0)
            answered[path] = n + 1
            script = load("script.json").get(path, [])
            status = script[n] if n < len(script) else 200
            try:
                kind = json.loads(body)["type"]
            except Exception:
                kind = None
            line = {
                "path": path,
                "webhook_id": headers.get("webhook-id"),
                "type": kind,
                "status": status,
                "verified": verified,
                "signatures": len(headers.get("webhook-signature", "").split(" ")),
                "content_type": headers.get("content-type"),
            }
            with open(os.path.join(state, "log.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"seen")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((host, 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
