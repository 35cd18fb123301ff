"""python -m loadtest --url URL --scenario normal|drift|bad-input|spike --rate R --duration S"""

from __future__ import annotations

import argparse
import json
import sys

from loadtest.runner import (
    DEFAULT_CLIENTS,
    MAX_BATCH,
    MAX_CONCURRENCY,
    MAX_DURATION,
    MAX_RATE,
    LoadTestError,
    run,
)
from loadtest.scenarios import SCENARIOS, load_rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="Send bounded traffic to a running model service and summarize the answers. "
        "Rows follow the model card's training reference (GET /v1/model).",
    )
    p.add_argument("--url", default="http://127.0.0.1:8080", help="base URL of the service")
    p.add_argument("--scenario", choices=SCENARIOS, default="normal")
    p.add_argument("--rate", type=float, default=20.0, help=f"requests/s (at most {MAX_RATE:g})")
    p.add_argument(
        "--duration", type=float, default=30.0, help=f"seconds (at most {MAX_DURATION:g})"
    )
    p.add_argument("--batch", type=int, default=1, help=f"rows per request (at most {MAX_BATCH})")
    p.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help=f"most requests in flight (default %(default)s, at most {MAX_CONCURRENCY})",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help="independent clients taking turns, each with its own keep-alive connection, as "
        "many users would: a Service splits traffic per connection (%(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the rows")
    p.add_argument(
        "--rows",
        help="JSON Lines (or a JSON array) of real rows to draw from, instead of sampling each "
        "feature from the card's reference bins on its own",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--drift-shift", type=float, default=1.5, help="drift: final shift in std")
    p.add_argument(
        "--drift-ramp", type=float, default=0.6, help="drift: share of the run spent shifting"
    )
    p.add_argument(
        "--drift-features", type=float, default=0.5, help="drift: share of features that move"
    )
    p.add_argument("--bad-fraction", type=float, default=0.3, help="bad-input: share of bad ones")
    p.add_argument("--spike-factor", type=float, default=4.0, help="spike: rate multiplier")
    p.add_argument("--spike-width", type=float, default=0.2, help="spike: share of the run")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback URL (default: loopback only, e.g. a kubectl port-forward)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rows = load_rows(args.rows) if args.rows else ()
    except (OSError, ValueError) as err:
        print(f"loadtest: --rows: {err}", file=sys.stderr)
        return 2
    try:
        summary = run(
            args.url,
            args.scenario,
            args.rate,
            args.duration,
            batch=args.batch,
            concurrency=args.concurrency,
            clients=args.clients,
            seed=args.seed,
            timeout=args.timeout,
            progress=None if args.quiet else sys.stderr,
            allow_remote=args.allow_remote,
            drift_shift=args.drift_shift,
            drift_ramp=args.drift_ramp,
            drift_features=args.drift_features,
            bad_fraction=args.bad_fraction,
            spike_factor=args.spike_factor,
            spike_width=args.spike_width,
            base_rows=rows,
        )
    except (LoadTestError, ValueError) as err:
        print(f"loadtest: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
