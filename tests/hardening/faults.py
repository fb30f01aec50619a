#!/usr/bin/env python3
"""faults.py — the client side of load_test.sh's fault scenarios against a running medvlpd (stdlib only).

  faults.py malformed URL CLI_JSON     1,000 requests: malformed ones of 56 kinds, each of which must
                                       get its 4xx status and {"error":{"status","code","message"}} (5
                                       protocol-level kinds: libmicrohttpd's own answer),
                                       interleaved with valid ones that must equal the CLI's output
                                       (texts) or the daemon's first answer (images, search)
  faults.py slowloris URL TIMEOUT_S    slow and stalled clients beside normal ones
  faults.py add URL ACKED_FILE         adds captions and images from 4 threads (100 requests each, or
                                       until the daemon is killed), appending
                                       every acknowledged id to ACKED_FILE as it is acknowledged
  faults.py verify URL ACKED_FILE      every acknowledged id is in the index with its metadata
  faults.py texts                      prints the texts the valid /embed/text requests embed
Prints its figures; exits 1 on the first broken expectation (named)."""
import base64
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

FIXTURES = os.environ["MEDVLP_FIXTURES"]
PNG = open(os.path.join(FIXTURES, "models/images/rgb_70x52.png"), "rb").read()
JPG = open(os.path.join(FIXTURES, "models/images/gray_61x80.jpg"), "rb").read()
B64PNG = base64.b64encode(PNG).decode()
TEXTS = ["No acute cardiopulmonary process.", "Small left pleural effusion with adjacent atelectasis."]


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def request(url, method, path, body=b"", headers=None, timeout=30):
    """One request on its own connection: (status, parsed JSON or None, raw body)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    return resp.status, doc, raw


def raw_request(url, data, timeout=30):
    """Sends bytes as they are (for requests http.client refuses to build); returns (status, reply),
    status 0 when the server answered nothing within timeout or closed the connection."""
    u = urllib.parse.urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            pass
    line = reply.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0, reply


JSON = {"Content-Type": "application/json"}


def js(doc):
    return json.dumps(doc).encode()


# (name, method, path, body, headers, expected status, expected error code)
MALFORMED = [
    ("bad json", "POST", "/embed/text", b'{"texts": [', JSON, 400, "invalid_json"),
    ("json array body", "POST", "/embed/text", b"[1, 2]", JSON, 422, "invalid_request"),
    ("texts is a number", "POST", "/embed/text", js({"texts": 5}), JSON, 422, "invalid_request"),
    ("texts has a number", "POST", "/embed/text", js({"texts": ["a", 1]}), JSON, 422, "invalid_request"),
    ("texts empty", "POST", "/embed/text", js({"texts": []}), JSON, 422, "invalid_request"),
    ("texts missing", "POST", "/embed/text", b"{}", JSON, 422, "invalid_request"),
    ("too many texts", "POST", "/embed/text", js({"texts": ["x"] * 300}), JSON, 422, "too_many_inputs"),
    ("normalize not bool", "POST", "/embed/text", js({"texts": ["a"], "normalize": "yes"}), JSON, 422, "invalid_request"),
    ("invalid utf-8", "POST", "/embed/text", b'{"texts": ["\xff\xfe\xfd"]}', JSON, 400, "invalid_json"),
    ("raw NUL byte", "POST", "/embed/text", b'{"texts": ["a\x00b"]}', JSON, 400, "invalid_json"),
    ("escaped NUL", "POST", "/embed/text", b'{"texts": ["a\\u0000b"]}', JSON, 400, "invalid_json"),
    ("duplicate key", "POST", "/embed/text", b'{"texts": ["a"], "texts": ["b"]}', JSON, 400, "invalid_json"),
    ("deep nesting", "POST", "/embed/text", b"[" * 60000, JSON, 400, "invalid_json"),
    ("text/plain", "POST", "/embed/text", b"hello", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("no content type", "POST", "/embed/text", js({"texts": ["a"]}), {}, 415, "unsupported_media_type"),
    ("wrong method", "PUT", "/embed/text", js({"texts": ["a"]}), JSON, 405, "method_not_allowed"),
    ("unknown path", "POST", "/embed/txt", js({"texts": ["a"]}), JSON, 404, "not_found"),
    ("oversize body", "POST", "/embed/text", b'{"texts": ["' + b"a" * 70000 + b'"]}', JSON, 413, "body_too_large"),
    ("openai input number", "POST", "/v1/embeddings", js({"input": 3}), JSON, 422, "invalid_request"),
    ("openai token arrays", "POST", "/v1/embeddings", js({"input": [[1, 2]]}), JSON, 422, "invalid_request"),
    ("openai base64 format", "POST", "/v1/embeddings", js({"input": "a", "encoding_format": "base64"}), JSON, 422, "invalid_request"),
    ("bad base64 char", "POST", "/embed/image", js({"images": ["ab!d"]}), JSON, 400, "invalid_base64"),
    ("base64 length", "POST", "/embed/image", js({"images": ["abc"]}), JSON, 400, "invalid_base64"),
    ("base64 whitespace", "POST", "/embed/image", js({"images": [B64PNG[:8] + "\n" + B64PNG[8:]]}), JSON, 400, "invalid_base64"),
    ("data url not base64", "POST", "/embed/image", js({"images": ["data:image/png," + B64PNG]}), JSON, 400, "invalid_base64"),
    ("images a number", "POST", "/embed/image", js({"images": 7}), JSON, 422, "invalid_request"),
    ("images empty", "POST", "/embed/image", js({"images": []}), JSON, 422, "invalid_request"),
    ("image not an image", "POST", "/embed/image", js({"images": [base64.b64encode(b"hello world!").decode()]}), JSON, 415, "unsupported_media_type"),
    ("truncated png", "POST", "/embed/image", PNG[:200], {"Content-Type": "image/png"}, 400, "invalid_input"),
    ("gif", "POST", "/embed/image", b"GIF89a" + b"\0" * 40, {"Content-Type": "image/png"}, 415, "unsupported_media_type"),
    ("empty raw image", "POST", "/embed/image", b"", {"Content-Type": "image/png"}, 422, "invalid_request"),
    ("image/webp type", "POST", "/embed/image", PNG, {"Content-Type": "image/webp"}, 415, "unsupported_media_type"),
    ("truncated multipart", "POST", "/embed/image",
     b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n\r\n' + PNG[:100],
     {"Content-Type": "multipart/form-data; boundary=B"}, 400, "invalid_multipart"),
    ("multipart no boundary", "POST", "/embed/image", b"--B\r\n\r\nx\r\n--B--", {"Content-Type": "multipart/form-data"}, 400, "invalid_multipart"),
    ("multipart no file", "POST", "/embed/image", b'--B\r\nContent-Disposition: form-data; name="n"\r\n\r\nx\r\n--B--',
     {"Content-Type": "multipart/form-data; boundary=B"}, 422, "invalid_request"),
    ("search no query", "POST", "/search", b"{}", JSON, 422, "invalid_request"),
    ("search two queries", "POST", "/search", js({"text": "a", "image": B64PNG}), JSON, 422, "invalid_request"),
    ("search huge k", "POST", "/search", js({"text": "a", "k": 10 ** 12}), JSON, 422, "invalid_request"),
    ("search k zero", "POST", "/search", js({"text": "a", "k": 0}), JSON, 422, "invalid_request"),
    ("search k string", "POST", "/search", js({"text": "a", "k": "5"}), JSON, 422, "invalid_request"),
    ("search bad target", "POST", "/search", js({"text": "a", "target": "videos"}), JSON, 422, "invalid_request"),
    ("search embedding dim", "POST", "/search", js({"embedding": [0.1, 0.2], "target": "images"}), JSON, 422, "invalid_request"),
    ("search embedding no target", "POST", "/search", js({"embedding": [0.1]}), JSON, 422, "invalid_request"),
    ("search nested filter", "POST", "/search", js({"text": "a", "filter": {"a": {"b": 1}}}), JSON, 422, "invalid_request"),
    ("search raw image bad k", "POST", "/search?k=abc", PNG, {"Content-Type": "image/png"}, 422, "invalid_request"),
    ("add items empty", "POST", "/index/captions", js({"items": []}), JSON, 422, "invalid_request"),
    ("add caption with image", "POST", "/index/captions", js({"items": [{"image": B64PNG}]}), JSON, 422, "invalid_request"),
    ("add metadata not object", "POST", "/index/captions", js({"items": [{"text": "a", "metadata": [1]}]}), JSON, 422, "invalid_request"),
    ("delete unknown id", "DELETE", "/index/images/987654321", b"", {}, 404, "not_found"),
    ("delete id not numeric", "DELETE", "/index/images/abc", b"", {}, 404, "not_found"),
    ("huge content-length", "RAW", None, b"POST /embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 10000000000\r\n\r\n{}", None, 413, "body_too_large"),
    # Protocol errors never reach medvlpd's handlers: libmicrohttpd answers them itself (an HTML
    # body, no JSON) or, for a request line with a NUL byte, answers nothing (it drops the connection
    # at once or at --timeout); what matters is that the daemon keeps serving everyone else.
    ("garbage request line", "RAW", None, b"\x00\x01GARBAGE / HTTP/9\r\n\r\n", None, 0, None),
    ("header line without colon", "RAW", None, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", None, 400, None),
    ("bad chunk size", "RAW", None, b"POST /embed/text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Type: application/json\r\n\r\nzz\r\n", None, 400, None),
    ("negative content-length", "RAW", None, b"POST /embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: -5\r\n\r\n{}", None, 400, None),
    ("unknown HTTP version", "RAW", None, b"GET /healthz HTTP/9.9\r\n\r\n", None, 505, None),
]


def run_malformed_kind(url, kind):
    name, method, path, body, headers, status, code = kind
    if method == "RAW":
        got, reply = raw_request(url, body, timeout=2)
        try:
            doc = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        except (IndexError, ValueError):
            doc = None
    else:
        got, doc, _ = request(url, method, path, body, headers)
    if got != status:
        fail(f"malformed '{name}': status {got}, expected {status}")
    if code and not (isinstance(doc, dict) and doc.get("error", {}).get("status") == status
                     and doc["error"].get("code") == code and isinstance(doc["error"].get("message"), str)):
        fail(f"malformed '{name}': error body {doc!r}, expected code {code}")


def close_rows(a, b):
    return len(a) == len(b) and all(len(x) == len(y) and max(abs(p - q) for p, q in zip(x, y)) < 1e-5
                                    for x, y in zip(a, b))


def malformed(url, cli_json):
    cli_rows = json.load(open(cli_json))
    valid = [
        ("embed text", "POST", "/embed/text", js({"texts": TEXTS}), JSON),
        ("embed image", "POST", "/embed/image", js({"images": [B64PNG]}), JSON),
        ("embed image raw", "POST", "/embed/image", JPG, {"Content-Type": "image/jpeg"}),
        ("search", "POST", "/search", js({"text": TEXTS[0], "target": "captions", "k": 3}), JSON),
    ]
    first = {}
    n_valid = n_bad = 0
    kinds_seen = set()
    for i in range(1000):
        if i % 3 == 0:
            name, method, path, body, headers = valid[(i // 3) % len(valid)]
            status, doc, _ = request(url, method, path, body, headers)
            if status != 200:
                fail(f"valid '{name}' #{i}: status {status}: {doc}")
            answer = doc.get("embeddings") or [(r["id"], round(r["score"], 5)) for r in doc["results"]]
            if name == "embed text" and not close_rows(answer, cli_rows):
                fail(f"valid '{name}' #{i}: embeddings differ from medvlp embed-text")
            first.setdefault(name, answer)
            same = close_rows(answer, first[name]) if name.startswith("embed") else answer == first[name]
            if not same:
                fail(f"valid '{name}' #{i}: answer differs from the first one")
            n_valid += 1
        else:
            kind = MALFORMED[n_bad % len(MALFORMED)]
            try:
                run_malformed_kind(url, kind)
            except OSError as e:
                fail(f"malformed '{kind[0]}' #{i}: {e!r}")
            kinds_seen.add(kind[0])
            n_bad += 1
    n_protocol = sum(1 for k in MALFORMED if k[6] is None)
    print(f"malformed: {n_bad} malformed requests of {len(kinds_seen)} kinds answered as expected "
          f"({len(kinds_seen) - n_protocol} kinds with their 4xx JSON error, {n_protocol} protocol-level kinds "
          f"by libmicrohttpd), {n_valid} valid requests answered correctly")


def slowloris(url, timeout_s):
    timeout_s = float(timeout_s)
    u = urllib.parse.urlparse(url)
    stop = threading.Event()
    errors = []

    def trickler(payload):
        """Sends one byte every timeout/3 s: never idle long enough to be timed out."""
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=30)
            for b in payload:
                if stop.wait(timeout_s / 3):
                    break
                s.send(bytes([b]))
            s.close()
        except OSError:
            pass  # the server may drop a slow client; what matters is that others are served

    def staller(i, closed_after):
        """Sends half a request and goes silent: the server must close it after its timeout."""
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=timeout_s * 5 + 10)
            s.sendall(b"POST /embed/text HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"te" if i % 2 else
                      b"GET /healthz HTTP/1.1\r\nHo")
            t0 = time.monotonic()
            while s.recv(4096):
                pass
            closed_after[i] = time.monotonic() - t0
            s.close()
        except OSError as e:
            errors.append(f"stalled client {i}: {e}")

    payload = b"POST /embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 200
    tricklers = [threading.Thread(target=trickler, args=(payload,)) for _ in range(100)]
    closed_after = {}
    stallers = [threading.Thread(target=staller, args=(i, closed_after)) for i in range(40)]
    for t in tricklers + stallers:
        t.start()
    time.sleep(0.5)
    latencies = []
    t_end = time.monotonic() + max(3 * timeout_s, 6)
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        status, doc, _ = request(url, "POST", "/embed/text", js({"texts": TEXTS}), JSON, timeout=10)
        latencies.append(time.monotonic() - t0)
        if status != 200 or len(doc["embeddings"]) != 2:
            fail(f"normal request during slow-loris: status {status}")
        time.sleep(0.05)
    stop.set()
    for t in tricklers + stallers:
        t.join()
    if errors:
        fail(errors[0])
    if len(closed_after) != len(stallers):
        fail(f"only {len(closed_after)} of {len(stallers)} stalled clients were closed")
    latencies.sort()
    print(f"slowloris: {len(tricklers)} trickling + {len(stallers)} stalled clients; {len(latencies)} normal requests "
          f"all 200, latency median {latencies[len(latencies) // 2] * 1e3:.1f} ms max {latencies[-1] * 1e3:.1f} ms; "
          f"stalled clients closed after {min(closed_after.values()):.1f}..{max(closed_after.values()):.1f} s "
          f"(--timeout {timeout_s:g})")


def add(url, acked_file):
    lock = threading.Lock()
    out = open(acked_file, "a")

    def worker(w):
        # Bounded so that verify's k=1000 searches can list every target's items (two rounds).
        for n in range(100):
            tag = f"w{w}-{n}"
            if w % 2:
                target, body = "captions", {"items": [{"text": f"finding {tag}", "metadata": {"tag": tag}},
                                                      {"text": f"impression {tag}", "metadata": {"tag": tag + "b"}}]}
            else:
                target, body = "images", {"items": [{"image": B64PNG, "metadata": {"tag": tag}}]}
            try:
                status, doc, _ = request(url, "POST", "/index/" + target, js(body), JSON)
            except OSError:
                return  # the daemon was killed
            if status != 200:
                return
            with lock:
                for item, id_ in zip(body["items"], doc["ids"]):
                    out.write(json.dumps({"target": target, "id": id_, "tag": item["metadata"]["tag"]}) + "\n")
                out.flush()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def verify(url, acked_file):
    acked = [json.loads(line) for line in open(acked_file) if line.endswith("\n")]
    if not acked:
        fail("no addition was acknowledged before the kill")
    status, stats, _ = request(url, "GET", "/index")
    dim = request(url, "GET", "/v1/models")[1]["data"][0]["dim"]
    found = {}
    for target in ("images", "captions"):
        status, doc, _ = request(url, "POST", "/search", js({"embedding": [1.0] + [0.0] * (dim - 1),
                                                              "target": target, "k": 1000}), JSON)
        if status != 200:
            fail(f"search {target} after restart: {status}")
        for r in doc["results"]:
            found[(target, r["id"])] = r["metadata"].get("tag")
    for a in acked:
        if found.get((a["target"], a["id"])) != a["tag"]:
            fail(f"acknowledged {a['target']} id {a['id']} ({a['tag']}) missing after kill -9 and restart "
                 f"(found {found.get((a['target'], a['id']))!r}; {len(acked)} acknowledged, {len(found)} found)")
    print(f"kill9: {len(acked)} acknowledged additions, all present with their metadata after kill -9 and restart "
          f"(index now {stats})")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "texts":
        print("\n".join(TEXTS))
        sys.exit(0)
    {"malformed": malformed, "slowloris": slowloris, "add": add, "verify": verify}[mode](*sys.argv[2:])
