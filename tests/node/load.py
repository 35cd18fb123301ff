"""Bounded prediction traffic, run inside the real node's network namespace by the tests:

    nsenter --net=<node netns> python tests/node/load.py URL ROWS_JSON [--rate R] [--seconds S]
        [--host H]

Sends single-row POSTs to URL/v1/predict from a few threads at about R requests/s until
SIGTERM or S seconds (with Host: H, a Gateway listener's hostname, if given), then prints
{"ok": n, "failed": n, "versions": {...}, "errors": {...}, "failures": [...]} as JSON.
"versions" counts the answers by the model version that gave them. A request fails on any
status but 200 or any connection error (each counted by its kind); "failures" lists the
first few as [wall-clock time, kind], to line them up with the pods' events and kube-proxy's
log when one happens.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import threading
import time
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("rows", help="a JSON list of instances")
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--host", help="the Host header (default: the URL's)")
    args = parser.parse_args()
    rows = json.loads(args.rows)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts: collections.Counter[str] = collections.Counter()
    versions: collections.Counter[str] = collections.Counter()
    headers = {"Content-Type": "application/json", **({"Host": args.host} if args.host else {})}
    failures: list[tuple[str, str]] = []
    lock = threading.Lock()
    interval = args.threads / args.rate

    def worker(offset: int) -> None:
        i = offset
        while not stop.is_set():
            started = time.monotonic()
            body = json.dumps({"instances": [rows[i % len(rows)]]}).encode()
            req = urllib.request.Request(f"{args.url}/v1/predict", data=body, headers=headers)
            version = None
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    outcome = "ok" if resp.status == 200 else f"http {resp.status}"
                    version = json.loads(resp.read()).get("version")
            except urllib.error.HTTPError as e:
                outcome = f"http {e.code}"
            except (OSError, ValueError) as e:  # refused, reset, timed out; not JSON
                outcome = type(getattr(e, "reason", e)).__name__
            with lock:
                counts[outcome] += 1
                if outcome == "ok":
                    versions[str(version)] += 1
                if outcome != "ok" and len(failures) < 50:
                    failures.append(
                        (time.strftime("%H:%M:%S") + f"{time.time() % 1:.3f}"[1:], outcome)
                    )
            i += args.threads
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
    for t in threads:
        t.start()
    stop.wait(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    ok = counts.pop("ok", 0)
    failed = sum(counts.values())
    summary = {"ok": ok, "failed": failed, "versions": dict(versions), "errors": dict(counts)}
    print(json.dumps({**summary, "failures": failures}))


if __name__ == "__main__":
    main()
