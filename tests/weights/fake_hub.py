#!/usr/bin/env python3
"""fake_hub.py ROOT PORT_FILE [--bad-sha] — a local stand-in for the Hugging Face hub and Google Cloud
Storage, so weights/fetch is tested offline: it serves ROOT/<path> for /<owner>/<repo>/resolve/<rev>/<path>
(answering HEAD with X-Linked-Size and X-Linked-Etag = SHA-256, as the hub does for LFS files) and for
/<bucket>/<object> (with x-goog-hash md5, as GCS does), honours `Range: bytes=N-` (curl -C -), and
writes the port it listens on to PORT_FILE. --bad-sha announces a wrong SHA-256 and MD5 for every file.
Python standard library only."""
import base64
import hashlib
import http.server
import os
import sys

ROOT, PORT_FILE = sys.argv[1], sys.argv[2]
BAD = "--bad-sha" in sys.argv[3:]


class Hub(http.server.BaseHTTPRequestHandler):
    def file_path(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":  # owner/repo/resolve/rev/path
            return os.path.join(ROOT, parts[0], parts[1], *parts[4:]), "hub"
        return os.path.join(ROOT, *parts), "gcs"

    def headers_for(self, path, kind, data):
        if kind == "hub":
            digest = hashlib.sha256(data + (b"x" if BAD else b"")).hexdigest()
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("X-Linked-Etag", '"%s"' % digest)
        else:
            digest = base64.b64encode(hashlib.md5(data + (b"x" if BAD else b"")).digest()).decode()
            self.send_header("x-goog-hash", "crc32c=AAAAAA==")
            self.send_header("x-goog-hash", "md5=" + digest)

    def answer(self, with_body):
        path, kind = self.file_path()
        if ".." in self.path or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = open(path, "rb").read()
        start = 0
        ranged = self.headers.get("Range", "")
        if with_body and ranged.startswith("bytes="):
            start = int(ranged[6:].split("-")[0])
        if start:
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.headers_for(path, kind, data)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if with_body:
            self.wfile.write(data[start:])

    def do_HEAD(self):
        self.answer(False)

    def do_GET(self):
        self.answer(True)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Hub)
with open(PORT_FILE + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
