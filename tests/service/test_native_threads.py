"""The entry point sizes OpenMP's pool for every thread before scikit-learn loads.

``threadpool_limits`` only reaches the thread that calls it; OMP_NUM_THREADS, read
once when the OpenMP runtime loads, is what any other thread starts with. So the
entry point defaults it to MODELOPS_INFERENCE_THREADS before numpy or scikit-learn
is imported, and leaves an OMP_NUM_THREADS that is already set alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.paths import REPO_ROOT
from modelops_service.__main__ import default_native_threads
from modelops_service.settings import Settings

# Runs the real entry point up to uvicorn.run, then asks a fresh thread how many
# OpenMP threads it would use (what a worker thread that calls the model would get).
PROBE = """
import json, sys, threading
import uvicorn

def fake_run(app, **kwargs):
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_info
    seen = {}
    def probe():
        seen["openmp"] = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    print(json.dumps(seen))

uvicorn.run = fake_run
from modelops_service.__main__ import main
sys.exit(main(["--port", "8080"]))
"""


def run_probe(model_dir: Path, **env: str) -> list[int]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPS_", "OMP_"))}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "service"), str(REPO_ROOT)])
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, "MODELOPS_MODEL_DIR": str(model_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    openmp = json.loads(out.stdout.strip().splitlines()[-1])["openmp"]
    assert openmp, "scikit-learn's OpenMP runtime was not found"
    return openmp


def test_inference_threads_becomes_every_threads_openmp_default(model_root: Path) -> None:
    # 3: neither the default (1) nor this machine's core count, so only the setting gives it.
    assert set(run_probe(model_root / "wine" / "1", MODELOPS_INFERENCE_THREADS="3")) == {3}


def test_an_omp_num_threads_already_set_wins(model_root: Path) -> None:
    threads = run_probe(
        model_root / "wine" / "1", MODELOPS_INFERENCE_THREADS="3", OMP_NUM_THREADS="2"
    )
    assert set(threads) == {2}


def test_default_native_threads_only_fills_a_missing_value(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, inference_threads=4)
    empty: dict[str, str] = {}
    default_native_threads(settings, empty)
    assert empty == {"OMP_NUM_THREADS": "4"}
    preset = {"OMP_NUM_THREADS": "7"}
    default_native_threads(settings, preset)
    assert preset == {"OMP_NUM_THREADS": "7"}
