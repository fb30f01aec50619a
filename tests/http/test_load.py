#!/usr/bin/env python3
"""test_load.py — medvlpd under concurrent mixed load, on the tiny BiomedCLIP-layout model.

Phase 1: 32 clients send /embed/text, /embed/image and /search for LOAD_SECONDS. Every answer must be
200 (or 503 back-pressure) and equal what an independent computation gives for the same input:
embeddings are the `medvlp embed-text` / `embed-image` CLI rows; search results are the brute-force
cosine ranking of those CLI rows (not FAISS). /metrics must show merged batches.
Phase 2: the same load with a fresh connection per request, and SIGTERM in the middle: medvlpd must
exit 0, and every request its access log answered 200 must have reached its client whole.

Python standard library only (CI has no numpy). Usage: test_load.py BUILD_ROOT FIXTURES [SECONDS]
"""
import base64
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

BUILD, FIXTURES = sys.argv[1], sys.argv[2]
LOAD_SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
N_CLIENTS = 32
TOLERANCE = 1e-5
MODEL = os.path.join(FIXTURES, "models", "biomedclip")
IMAGE_NAMES = ["rgb_300x200.png", "jpeg_base_300x260.jpg", "L_200x150.png", "RGBA_150x220.png",
               "jpeg_gray_180x140.jpg", "rgb_97x131.png"]

failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message, file=sys.stderr)


def cli_rows(args, stdin=None):
    out = subprocess.run([os.path.join(BUILD, "medvlp")] + args, input=stdin, capture_output=True,
                         check=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def max_abs_diff(rows_a, rows_b):
    if len(rows_a) != len(rows_b) or any(len(a) != len(b) for a, b in zip(rows_a, rows_b)):
        return float("inf")
    return max((abs(x - y) for a, b in zip(rows_a, rows_b) for x, y in zip(a, b)), default=0.0)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


class Daemon:
    def __init__(self, workdir, index_dir):
        self.log_path = os.path.join(workdir, "daemon.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(BUILD, "medvlpd"), "-m", MODEL, "-i", index_dir,
                                      "--listen", "127.0.0.1:0", "--max-wait-us", "5000"],
                                     stderr=self.log)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("medvlpd exited during startup: " + open(self.log_path).read())
            log = open(self.log_path).read()
            if ": ready" in log:
                self.port = int(log.split("(port ")[1].split(")")[0])
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("medvlpd did not become ready")

    def request(self, method, path, body=None, headers=None, fresh=False, conn=None):
        """Returns (status, parsed JSON or text, connection to reuse)."""
        if conn is None or fresh:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type", "")
        if fresh:
            conn.close()
            conn = None
        return response.status, (json.loads(data) if kind.startswith("application/json") else data), conn

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def main():
    workdir = tempfile.mkdtemp(prefix="medvlp-load-")
    with open(os.path.join(FIXTURES, "text", "cli_corpus.txt"), encoding="utf-8") as corpus:
        texts = [line for line in corpus.read().split("\n")[:40] if line.strip()][:16]
    image_paths = [os.path.join(FIXTURES, "vision", name) for name in IMAGE_NAMES]
    images = [open(path, "rb").read() for path in image_paths]

    # The independent answers: the CLI's rows, and brute-force rankings over them.
    text_rows = cli_rows(["embed-text", "-m", MODEL], stdin="\n".join(texts) + "\n")
    image_rows = cli_rows(["embed-image", "-m", MODEL] + image_paths)

    daemon = Daemon(workdir, os.path.join(workdir, "index"))
    status, body, _ = daemon.request("POST", "/index/images", json.dumps(
        {"items": [{"image": base64.b64encode(b).decode(), "metadata": {"n": i}} for i, b in enumerate(images)]}),
        {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError("adding images failed: %r" % (body,))
    image_ids = body["ids"]

    def expected_search(text_index):
        ranked = sorted(range(len(images)), key=lambda i: -dot(text_rows[text_index], image_rows[i]))[:3]
        return [(image_ids[i], dot(text_rows[text_index], image_rows[i])) for i in ranked]

    def one_request(rng, fresh, conn, request_id):
        """Sends one random request; returns (status, error or None, conn)."""
        kind = rng.randrange(3)
        headers = {"X-Request-Id": request_id}
        if kind == 0:
            picks = rng.sample(range(len(texts)), rng.randint(1, 3))
            headers["Content-Type"] = "application/json"
            status, body, conn = daemon.request("POST", "/embed/text", json.dumps({"texts": [texts[i] for i in picks]}),
                                                headers, fresh, conn)
            ok = status != 200 or max_abs_diff(body["embeddings"], [text_rows[i] for i in picks]) < TOLERANCE
        elif kind == 1:
            pick = rng.randrange(len(images))
            headers["Content-Type"] = "image/jpeg" if image_paths[pick].endswith(".jpg") else "image/png"
            status, body, conn = daemon.request("POST", "/embed/image", images[pick], headers, fresh, conn)
            ok = status != 200 or max_abs_diff(body["embeddings"], [image_rows[pick]]) < TOLERANCE
        else:
            pick = rng.randrange(len(texts))
            headers["Content-Type"] = "application/json"
            status, body, conn = daemon.request("POST", "/search", json.dumps({"text": texts[pick], "k": 3}),
                                                headers, fresh, conn)
            ok = status != 200 or (
                [r["id"] for r in body["results"]] == [i for i, _ in expected_search(pick)] and
                max(abs(r["score"] - s) for r, (_, s) in zip(body["results"], expected_search(pick))) < TOLERANCE)
        if status not in (200, 503):
            return status, "status %d: %r" % (status, body), conn
        return status, None if ok else "wrong answer from %s" % ["/embed/text", "/embed/image", "/search"][kind], conn

    # ---- phase 1: steady load on keep-alive connections ----
    counts = {}
    lock = threading.Lock()
    deadline = time.time() + LOAD_SECONDS

    def client(seed):
        rng, conn, n = random.Random(seed), None, 0
        while time.time() < deadline:
            n += 1
            try:
                status, error, conn = one_request(rng, False, conn, "load-%d-%d" % (seed, n))
            except (OSError, http.client.HTTPException) as exc:
                status, error, conn = "transport", "transport error: %r" % exc, None
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if error and len(failures) < 20:
                    fail(error)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(N_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts.values())
    print("phase 1: %d clients, %.0f s, %d requests (%.1f/s), statuses %s" %
          (N_CLIENTS, LOAD_SECONDS, total, total / LOAD_SECONDS, counts))
    if counts.get(200, 0) < N_CLIENTS:
        fail("too few answered requests: %s" % counts)
    if set(counts) - {200, 503}:
        fail("statuses other than 200/503: %s" % counts)

    _, metrics, _ = daemon.request("GET", "/metrics")
    batches = {}
    for line in metrics.decode().splitlines():
        for what in ("sum", "count"):
            prefix = 'medvlp_batch_size_%s{encoder="text"} ' % what
            if line.startswith(prefix):
                batches[what] = float(line[len(prefix):])
    print("text encoder: %d items in %d batched calls" % (batches.get("sum", 0), batches.get("count", 0)))
    if not batches.get("count") or batches["sum"] / batches["count"] <= 1.0:
        fail("no text batches merged under load: %s" % batches)

    # ---- phase 2: SIGTERM under load, a fresh connection per request ----
    answered = set()
    stop_at = time.time() + 30

    def closing_client(seed):
        rng, n, refused = random.Random(1000 + seed), 0, 0
        while time.time() < stop_at and refused < 20:
            n += 1
            request_id = "term-%d-%d" % (seed, n)
            try:
                status, error, _ = one_request(rng, True, None, request_id)
            except ConnectionRefusedError:
                refused += 1  # the daemon stopped listening: nothing was accepted
                time.sleep(0.01)
                continue
            except (OSError, http.client.HTTPException):
                continue  # reset before any response: checked against the access log below
            with lock:
                if status == 200:
                    answered.add(request_id)
                if error and len(failures) < 40:
                    fail("during SIGTERM: " + error)

    threads = [threading.Thread(target=closing_client, args=(seed,)) for seed in range(N_CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    exit_code = daemon.stop()
    for t in threads:
        t.join()
    if exit_code != 0:
        fail("medvlpd exited %d after SIGTERM under load" % exit_code)
    logged = set()
    for line in open(daemon.log_path):
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("status") == 200 and entry["request_id"].startswith("term-"):
                logged.add(entry["request_id"])
    lost = logged - answered
    print("phase 2: SIGTERM after 2 s; daemon answered %d requests 200, clients received %d, lost %d" %
          (len(logged), len(answered), len(lost)))
    if lost:
        fail("%d requests answered 200 by the daemon never reached their client: %s" % (len(lost), sorted(lost)[:5]))
    if not logged:
        fail("no request was answered during phase 2")

    print("test_load: %d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
