"""Ours' CPU per request with no sockets: the service's app under uvicorn's HTTP protocol
(the class and settings ``python -m modelops_service`` runs), fed the benchmark's request
bytes over in-memory keep-alive connections, in one process
(``bench/peers/inprocess_service.py``, a fresh one per measurement).

Under wrk the CPU per request moves 5-8% between runs (the kernel's socket work, the
scheduler, the load generator on the other core); here the rounds of one process agree
within 2-5%, and processes differ a few percent more among themselves (their memory
layout), hence several per service and the median of their ratios. What it leaves out:
the kernel's side of the sockets, and /metrics scrapes (nothing scrapes).

An A/B in one run, like bench/run.py: ``--variant NAME ENV=VALUE ...`` runs ours again
with those environment overrides (``PYTHONPATH=DIR`` for another service/, e.g. a checkout
of main's), each service in processes of its own, interleaved, and prints its ratio to ours.

  .venv/bin/python bench/inprocess.py --rows 1 --concurrency 16
  .venv/bin/python bench/inprocess.py --variant main PYTHONPATH=/tmp/main/service
  .venv/bin/python bench/inprocess.py --variant quiet MODELOPS_LOG_LEVEL=warning
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.model import Model, answers_match, load_model
from bench.run import parse_variants
from bench.servers import environment_without_settings, ours_env, v1_predictions

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "bench" / "peers" / "inprocess_service.py"


def run_service(
    args: argparse.Namespace, model: Model, overrides: dict[str, str], out_dir: Path, tag: str
) -> dict:
    """One measurement in a process of its own: ours' environment as bench/servers.py gives
    it, then the overrides; its request log goes to a file, as the service's would."""
    env = ours_env(model, environment_without_settings(), overrides)
    out = out_dir / f"{tag}.json"
    command = [sys.executable, str(CHILD), "--out", str(out), "--model", env["MODELOPS_MODEL_DIR"]]
    for flag in ("rows", "concurrency", "rounds", "round_seconds"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    with open(out_dir / f"{tag}.log", "wb") as log:
        code = subprocess.call(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        tail = (out_dir / f"{tag}.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{tag}: exit {code}\n{tail}")
    return json.loads(out.read_text())


def check_predictions(model: Model, rows: int, answers: dict[str, str]) -> None:
    """Every service answered what model.predict answers (no one measured on an error)."""
    for name, answer in answers.items():
        ok, got, want = answers_match(model, v1_predictions(json.loads(answer)), rows)
        if not ok:
            raise SystemExit(
                f"{name} answered {got.tolist()[:5]}, model.predict {want.tolist()[:5]}"
            )


def report(results: dict[str, list[list[float]]], args: argparse.Namespace) -> list[str]:
    """One line per service: the median CPU per request over every round, its range, and
    for a variant the median of its ratios to ours run by run (runs interleaved)."""
    lines = [
        f"In process: {args.rows} row(s) a request x {args.concurrency} connections, "
        f"{args.rounds} rounds of about {args.round_seconds:g} s of CPU in each of {args.runs} "
        "processes per service, interleaved",
        f"{'service':<20} {'us/request':>10} {'range':>15} {'vs ours':>8}",
    ]
    ours = [statistics.median(run) for run in results["ours"]]
    for name, runs in results.items():
        every = [us for run in runs for us in run]
        span = f"{min(every):.1f}-{max(every):.1f}"
        ratio = ""
        if name != "ours":
            ratios = [statistics.median(run) / o for run, o in zip(runs, ours, strict=True)]
            ratio = f"{statistics.median(ratios):.3f}x"
            if len(ratios) > 1:
                ratio += f" [{min(ratios):.3f}..{max(ratios):.3f}]"
        label = name if name == "ours" else f"ours [{name}]"
        lines.append(f"{label:<20} {statistics.median(every):>10.1f} {span:>15} {ratio:>8}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/wine/1", help="model directory")
    parser.add_argument("--rows", type=int, default=1, help="rows a request (default 1)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds a process")
    parser.add_argument(
        "--round-seconds", type=float, default=1.0, help="CPU time a round (default 1)"
    )
    parser.add_argument("--runs", type=int, default=3, help="processes per service")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar=("NAME", "ENV=VALUE"),
        help="also run ours with these environment overrides (PYTHONPATH=DIR: other code)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    model = load_model(Path(args.model).resolve())  # the child runs in the repository
    services = {"ours": {}, **parse_variants(args.variant)}
    results: dict[str, list[list[float]]] = {name: [] for name in services}
    with tempfile.TemporaryDirectory(prefix="inprocess-") as tmp:
        for run in range(args.runs):
            for name, overrides in services.items():
                print(f"[inprocess] run {run + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
                result = run_service(args, model, overrides, Path(tmp), f"{name}-{run}")
                if run == 0:
                    check_predictions(model, args.rows, {name: result["answer"]})
                results[name].append(result["us_per_request"])
    lines = report(results, args)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
