"""A webhook receiver for the tests: verifies every delivery with the
Standard Webhooks library (standardwebhooks, pinned in
scripts/install-test-deps) and logs each request as one JSON line.

Usage: receiver.py PORT SECRET LOG [MODE]
  MODE: ok (answer 200), fail:N (answer 500 to the first N requests, then
  200), silent (accept the connection, never answer)

Each log line: {"verified": bool, "id", "type", "subject", "answered", "error"}.
A delivery whose signature does not verify is answered 401 and logged with
verified false.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, SECRET, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "ok"
HOOK = Webhook(SECRET)
LOCK = threading.Lock()
SEEN = [0]


def log(entry):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if MODE == "silent":
            # Hold the connection open and never answer.
            time.sleep(3600)
            return
        with LOCK:
            SEEN[0] += 1
            n = SEEN[0]
        entry = {"id": self.headers.get("webhook-id")}
        try:
            payload = HOOK.verify(body, dict(self.headers))
            entry.update(verified=True, type=payload["type"], subject=payload["data"].get("id") or payload["data"].get("invite_id"))
        except WebhookVerificationError as e:
            entry.update(verified=False, error=str(e), answered=401)
            log(entry)
            self.send_response(401)
            self.end_headers()
            return
        status = 200
        if MODE.startswith("fail:") and n <= int(MODE.split(":")[1]):
            status = 500
        entry["answered"] = status
        log(entry)
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"temporarily broken")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print("listening", flush=True)
server.serve_forever()
