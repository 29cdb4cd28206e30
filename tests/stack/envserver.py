"""A trivial real target: serves its argv and stack env vars as JSON on every GET.

Listens where the stack says (SESSIONSTORM_TARGET_HOST / SESSIONSTORM_TARGET_PORT).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith("SESSIONSTORM_") or k in ("PORT", "EXTRA")}
        body = json.dumps({"argv": sys.argv[1:], "env": env, "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    HTTPServer((os.environ["SESSIONSTORM_TARGET_HOST"], int(os.environ["SESSIONSTORM_TARGET_PORT"])), Handler).serve_forever()
