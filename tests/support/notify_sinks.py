#!/usr/bin/env python3
"""The notification tests' providers, real servers on loopback:

- an SMTP server (aiosmtpd, Debian's python3-aiosmtpd) on --smtp-port;
- an HTTP webhook sink (http.server) on --http-port: POST /sms, POST /push.

Everything received is appended as one JSON object per line to
<dir>/mail.jsonl ({"mail_from", "rcpt_tos", "data", "code"}) and
<dir>/<path>.jsonl ({"path", "headers", "body", "status"}), refused ones
too, so a test counts attempts. A test steers a sink by writing
<dir>/<name>.mode ("ok", a status code such as "503" or "400" for HTTP,
or an SMTP reply code such as "451" or "550" for "mail"), optionally
followed by a delay in milliseconds ("ok 100"); the file is read on every
request. GET /healthz answers 200.
"""
import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

LOCK = threading.Lock()


def mode_of(directory, name):
    try:
        with open(os.path.join(directory, name + ".mode"), encoding="utf-8") as f:
            parts = f.read().split()
    except FileNotFoundError:
        return "ok", 0
    if not parts:
        return "ok", 0
    return parts[0], int(parts[1]) if len(parts) > 1 else 0


def record(directory, name, obj):
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with LOCK, open(os.path.join(directory, name + ".jsonl"), "a", encoding="utf-8") as f:
        f.write(line)


class MailHandler:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        mode, delay_ms = mode_of(self.directory, "mail")
        code = 250 if mode == "ok" else int(mode)
        record(self.directory, "mail", {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "code": code,
        })
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if code == 250:
            return "250 OK"
        return f"{code} refused by the test"


def http_handler(directory):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, text):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.reply(200 if self.path == "/healthz" else 404, "ok\n")

        def do_POST(self):
            name = self.path.strip("/")
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", "replace")
            if name not in ("sms", "push"):
                self.reply(404, "no such sink\n")
                return
            mode, delay_ms = mode_of(directory, name)
            status = 200 if mode == "ok" else int(mode)
            if delay_ms:
                time.sleep(delay_ms / 1000)
            record(directory, name, {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "status": status,
                "at": time.time(),
            })
            self.reply(status, "recorded\n")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    smtp = Controller(MailHandler(args.dir), hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    server = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(args.dir))
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        smtp.stop()


if __name__ == "__main__":
    main()
