#!/usr/bin/env python3
"""Loopback load test of `mmvae serve`: requests/s and latency percentiles.

Starts `mmvae serve --checkpoint DIR --port 0` itself, then, for each
endpoint and each number of concurrent clients, keeps that many clients
sending requests back to back for a fixed number of requests, and prints
one row: requests answered 200 per second, p50 / p99 latency of those,
how many were refused with 503 (queue full) or failed otherwise, and the
server's resident memory (VmRSS) after the row. At the end it prints the
server's peak resident memory (VmHWM) and checks that it is still alive.

The requests are made from the model's own outputs, so nothing but a
checkpoint is needed: one joint sample (/api/sample) gives the image and
caption that /api/check compares, and its caption is the text that
/api/generate draws (text -> image). /api/check needs a calibrated
checkpoint (`mmvae calibrate`); without one that endpoint is skipped.

Usage (Python 3 standard library only; Linux, for /proc):
  scripts/serve-load.py --bin target/release/mmvae --checkpoint runs/mnist/best \
      [--clients 1,4,16] [--requests 200] [--n 8] [--rounds 1] [-- extra serve args]
"""

import argparse
import base64
import concurrent.futures as cf
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def mem_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def start(binary, checkpoint, extra):
    proc = subprocess.Popen(
        [binary, "serve", "--checkpoint", checkpoint, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        proc.kill()
        sys.exit(f"error: mmvae serve did not print its address (got {line!r})")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, urllib.parse.urlsplit(url)


class Client:
    """One keep-alive connection, as a browser or script would hold."""

    def __init__(self, addr):
        self.addr = addr
        self.conn = http.client.HTTPConnection(addr.hostname, addr.port, timeout=300)

    def post(self, path, body):
        data = json.dumps(body).encode()
        t = time.perf_counter()
        self.conn.request("POST", path, data, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, time.perf_counter() - t, payload


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def level(addr, path, body, clients, requests):
    """`requests` requests from `clients` concurrent clients."""
    lock = threading.Lock()
    left = [requests]
    results = []

    def worker():
        c = Client(addr)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                status, dt, _ = c.post(path, body)
            except (OSError, http.client.HTTPException):
                status, dt = -1, 0.0
                c = Client(addr)
            with lock:
                results.append((status, dt))

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        for f in [ex.submit(worker) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - t
    ok = sorted(dt for s, dt in results if s == 200)
    busy = sum(1 for s, _ in results if s == 503)
    failed = len(results) - len(ok) - busy
    return len(ok) / wall, percentile(ok, 0.5), percentile(ok, 0.99), busy, failed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default="target/release/mmvae")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--requests", type=int, default=200, help="per row")
    p.add_argument("--n", type=int, default=8, help="images per /api/generate")
    p.add_argument("--rounds", type=int, default=1, help="repeat the table (memory must not grow)")
    p.add_argument("extra", nargs="*", help="more `mmvae serve` arguments, after --")
    a = p.parse_args()
    clients = [int(c) for c in a.clients.split(",")]

    proc, addr = start(a.bin, a.checkpoint, a.extra)
    try:
        c = Client(addr)
        c.conn.request("GET", "/api/info")
        info = json.loads(c.conn.getresponse().read())
        status, _, payload = c.post("/api/sample", {"n": 1, "seed": 0})
        if status != 200:
            sys.exit(f"error: /api/sample answered {status}: {payload[:200]!r}")
        sample = json.loads(payload)
        png = sample["images"][0].split(",", 1)[1]
        caption = sample["captions"][0]
        endpoints = [("/api/generate", {"text": caption, "n": a.n})]
        if info.get("calibrated"):
            endpoints.append(("/api/check", {"image": png, "text": caption}))
        else:
            print("note: the checkpoint is not calibrated; /api/check is skipped")
        rss0 = mem_kib(proc.pid, "VmRSS")
        print(f"server pid {proc.pid}, {addr.geturl()}, limits {json.dumps(info['limits'])}")
        print(f"caption used: {caption!r}; resident memory after loading: {rss0 / 1024:.0f} MiB")
        print()
        print("| round | endpoint | clients | requests | answered/s | p50 ms | p99 ms | 503 busy | failed | RSS after, MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in range(1, a.rounds + 1):
            for path, body in endpoints:
                name = path + (f" (n = {a.n})" if path.endswith("generate") else "")
                for k in clients:
                    rps, p50, p99, busy, failed = level(addr, path, body, k, a.requests)
                    rss = mem_kib(proc.pid, "VmRSS")
                    print(
                        f"| {r} | `{name}` | {k} | {a.requests} | {rps:.1f} | {p50 * 1e3:.0f} | "
                        f"{p99 * 1e3:.0f} | {busy} | {failed} | {rss / 1024:.0f} |",
                        flush=True,
                    )
        if proc.poll() is not None:
            sys.exit(f"error: the server exited with {proc.returncode}")
        print()
        print(f"peak resident memory (VmHWM): {mem_kib(proc.pid, 'VmHWM') / 1024:.0f} MiB; the server is still running")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
