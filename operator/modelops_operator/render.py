"""`helm template` of charts/model-service: the one source of the manifests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml


class RenderError(RuntimeError):
    """helm template failed: the message carries helm's stderr."""


class ChartRenderer:
    """Renders the chart with a small LRU cache: the same values give the same objects."""

    def __init__(self, chart: Path, helm: str = "helm", cache_size: int = 256) -> None:
        self.chart = Path(chart)
        self.helm = helm
        self._cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # helm's homes; removed by close(), or at exit by the directory's finalizer
        self._home_dir = tempfile.TemporaryDirectory(prefix="modelops-helm-")
        self._home = self._home_dir.name
        self.renders = 0

    def close(self) -> None:
        self._home_dir.cleanup()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # helm wants writable cache/config/data homes; the image's root fs is read-only
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env.setdefault(var, os.path.join(self._home, var.lower()))
        return env

    def render(self, release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        key = hashlib.sha256(
            json.dumps([release, namespace, values], sort_keys=True).encode()
        ).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return json.loads(json.dumps(self._cache[key]))
        objects = self._render(release, namespace, values)
        with self._lock:
            self._cache[key] = objects
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return json.loads(json.dumps(objects))

    def _render(self, release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=self._home) as vf:
            json.dump(values, vf)  # JSON is YAML
            vf.flush()
            cmd = [
                self.helm,
                "template",
                release,
                str(self.chart),
                "--namespace",
                namespace,
                "--values",
                vf.name,
            ]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=60, env=self._env(), check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RenderError(f"helm template could not run: {exc}") from exc
        self.renders += 1
        if proc.returncode != 0:
            raise RenderError(proc.stderr.strip() or f"helm template exited {proc.returncode}")
        return [doc for doc in yaml.safe_load_all(proc.stdout) if isinstance(doc, dict) and doc]
