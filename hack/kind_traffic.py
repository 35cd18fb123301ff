"""Steady prediction traffic for `make demo`: bounded, loopback only, standard library only.

Reads the model card (GET /v1/model) for the feature names and ranges and posts random
in-range rows to POST /v1/predict at a fixed rate, through the kind NodePort, so that the
requests spread over the stable and the canary pods. Stops by itself after --duration
seconds (or on SIGTERM) and prints what it got back.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

# Used when the card gives no ranges: one row of sklearn's wine data (class 0).
WINE_ROW = {
    "alcohol": 13.2,
    "malic_acid": 1.78,
    "ash": 2.14,
    "alcalinity_of_ash": 11.2,
    "magnesium": 100,
    "total_phenols": 2.65,
    "flavanoids": 2.76,
    "nonflavanoid_phenols": 0.26,
    "proanthocyanins": 1.28,
    "color_intensity": 4.38,
    "hue": 1.05,
    "od280/od315_of_diluted_wines": 3.4,
    "proline": 1050,
}


def feature_ranges(card: dict) -> list[tuple[str, float, float]]:
    """(name, low, high) for each feature the model card describes, or [] when it has none."""
    feats = card.get("features")
    if feats is None and isinstance(card.get("schema"), dict):
        feats = card["schema"].get("features")
    if isinstance(feats, dict):
        items = list(feats.items())
    elif isinstance(feats, list):
        items = [(f.get("name"), f) for f in feats if isinstance(f, dict)]
    else:
        return []
    out = []
    for name, spec in items:
        if not isinstance(spec, dict) or not name:
            continue
        low, high = spec.get("min"), spec.get("max")
        if low is None and isinstance(spec.get("range"), list | tuple) and len(spec["range"]) == 2:
            low, high = spec["range"]
        if isinstance(low, int | float) and isinstance(high, int | float) and high >= low:
            out.append((str(name), float(low), float(high)))
    return out


def make_row(ranges: list[tuple[str, float, float]], rng: random.Random) -> dict:
    if not ranges:
        return {k: v * rng.uniform(0.97, 1.03) for k, v in WINE_ROW.items()}
    # The middle of each range: in-range, like the training data, so a drift score
    # comes from the model version and not from the load generator.
    return {n: rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)) for n, lo, hi in ranges}


def request(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:30080")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds, then stop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    host = urlsplit(args.url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"traffic: {args.url} is not a loopback address; refusing", file=sys.stderr)
        return 2

    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    status, body = request(f"{args.url}/v1/model")
    try:
        card = json.loads(body) if status == 200 else {}
    except ValueError:
        card = {}
    ranges = feature_ranges(card if isinstance(card, dict) else {})
    print(
        f"traffic: {args.rate:g} req/s to {args.url}/v1/predict for up to {args.duration:g}s "
        f"({len(ranges) or 'fallback wine'} features)",
        flush=True,
    )

    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    start = time.monotonic()
    last_report = start
    interval = 1.0 / args.rate
    sent = 0
    while not stop and time.monotonic() - start < args.duration:
        status, _ = request(f"{args.url}/v1/predict", {"instances": [make_row(ranges, rng)]})
        counts[f"{status // 100}xx" if status else "unreachable"] += 1
        sent += 1
        now = time.monotonic()
        if now - last_report >= 30:
            print(f"traffic: {sent} sent, {dict(counts)}", flush=True)
            last_report = now
        time.sleep(max(0.0, start + sent * interval - time.monotonic()))
    print(f"traffic: stopped after {sent} requests, {dict(counts)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
