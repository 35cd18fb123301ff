"""Plot a benchmark run: throughput and p99 latency against concurrency, per payload size.

Usage: python bench/plot.py bench-results/bench-STAMP.json out.png
Runs in .cache/bench/report-venv (bench/requirements-report.txt: matplotlib).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ORDER = ("ours", "mlserver", "kserve", "floor")
STYLE = {
    "ours": {"color": "tab:blue", "marker": "o", "linewidth": 2.5},
    "mlserver": {"color": "tab:orange", "marker": "s"},
    "kserve": {"color": "tab:green", "marker": "^"},
    "floor": {"color": "tab:gray", "marker": "x", "linestyle": "--"},
}


def main(results_json: str, png: str) -> None:
    report = json.loads(Path(results_json).read_text())
    rows_list = report["settings"]["rows"]
    variants = [s for s in report["servers"] if s.startswith("ours:")]
    servers = [s for s in (ORDER[0], *variants, *ORDER[1:]) if s in report["servers"]]
    extra_colors = iter(["tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"])
    styles = {s: STYLE.get(s) or {"color": next(extra_colors), "marker": "D"} for s in servers}
    fig, axes = plt.subplots(2, len(rows_list), figsize=(6 * len(rows_list), 8), squeeze=False)
    for col, n in enumerate(rows_list):
        for s in servers:
            cells = sorted(
                (r for r in report["results"] if r["server"] == s and r["rows"] == n),
                key=lambda r: r["concurrency"],
            )
            if not cells:
                continue
            x = [r["concurrency"] for r in cells]
            label = report["servers"][s]["label"]
            axes[0][col].plot(x, [r["rows_per_s"] for r in cells], label=label, **styles[s])
            axes[1][col].plot(x, [r["p99_ms"] for r in cells], label=label, **styles[s])
        axes[0][col].set_title(f"{n}-row requests: throughput")
        axes[0][col].set_ylabel("rows/s" if n > 1 else "requests/s")
        axes[1][col].set_title(f"{n}-row requests: p99 latency")
        axes[1][col].set_ylabel("p99 ms (log)")
        axes[1][col].set_yscale("log")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xticks(report["settings"]["concurrency"])
            ax.set_xticklabels([str(c) for c in report["settings"]["concurrency"]])
            ax.set_xlabel("concurrent clients")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][col].set_ylim(bottom=0)
    model = report["model"]
    fig.suptitle(
        f"{model['name']}/{model['version']} ({model['estimator']}), one worker each, "
        f"median of {report['settings']['reps']} x {report['settings']['duration_s']:g}s "
        f"({report['started']})"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f">> wrote {png}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
