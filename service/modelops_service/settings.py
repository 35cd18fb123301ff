"""The service's settings: one pydantic-settings class, environment prefix ``MODELOPS_``.

Nothing is read at import time: ``Settings()`` reads the environment when the
entry point (or a test) builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8080
# Young-generation threshold with gc_freeze (Python's default: 700).
GC_GEN0_THRESHOLD = 10_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELOPS_", extra="ignore", protected_namespaces=()
    )

    # --- the artifact ---
    model_dir: Path = Field(
        description="Directory holding model.joblib and model.json.",
    )
    model_sha256: str | None = Field(
        default=None,
        description="Expected sha256 of model.joblib. When set, a different digest is "
        "refused. The digest in model.json is always checked as well.",
    )
    model_name: str | None = Field(
        default=None,
        description="The model name the deployment declares (the chart's model.name, a "
        "ModelDeployment's spec.model.name). When set, an artifact whose model.json names "
        "another model is refused: its metrics would carry a `model` label that the alert "
        "rules, the autoscaler and the canary analysis never select.",
    )
    model_version: str | None = Field(
        default=None,
        description="The model version the deployment declares (model.version, "
        "spec.model.version). When set, an artifact whose model.json says another version "
        "is refused, for the same reason (the `version` label).",
    )

    # --- network ---
    host: str = Field(default="0.0.0.0", description="Bind address.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Bind port.")

    # --- input limits and validation ---
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Largest request body.")
    max_instances: int = Field(default=1000, ge=1, description="Most rows in one request.")
    range_policy: Literal["flag", "reject"] = Field(
        default="flag",
        description="What to do with a value outside the training range (plus tolerance): "
        "'flag' answers and counts it, 'reject' answers 422.",
    )
    range_tolerance: float = Field(
        default=0.1,
        ge=0.0,
        description="How far outside the training range a value may lie before it is out of "
        "range, as a fraction of the range's width (0.1: 10% on either side).",
    )

    max_connection_age_seconds: float = Field(
        default=10.0,
        ge=0.0,
        description="Seconds a keep-alive connection serves before its next response says "
        "`Connection: close`, so that clients reconnect and kube-proxy spreads them over the "
        "pods that started since (a canary, a new replica). 0: connections stay open as long "
        "as the client keeps them.",
    )

    # --- drift ---
    drift_window: int = Field(default=1000, ge=1, description="Rows in the sliding window.")
    drift_min_rows: int = Field(
        default=100,
        ge=1,
        description="Rows the window needs before drift scores are exported.",
    )
    drift_refresh_seconds: float = Field(
        default=5.0,
        ge=0.0,
        description="Shortest time between two drift computations (they run on scrape or "
        "on GET /v1/drift, never on the request path).",
    )

    # --- inference ---
    inference_threads: int = Field(
        default=1,
        ge=1,
        description="OpenMP/BLAS threads per model call. One suits small batches: more threads "
        "cost more in start-up and contention than they save on a few rows. The entry point "
        "also makes it the default of OMP_NUM_THREADS (an OMP_NUM_THREADS already set wins).",
    )

    # --- processes ---
    workers: int = Field(
        default=1,
        ge=1,
        description="Server processes (uvicorn workers), for a pod with more than one core. "
        "Above 1, metrics go through prometheus_client's multiprocess mode (files in "
        "PROMETHEUS_MULTIPROC_DIR, a fresh temporary directory unless set; emptied at start): "
        "counters and histograms are summed over the workers on every scrape, and drift is "
        "one report over the rows of every worker.",
    )

    # --- batching ---
    batch_max_rows: int = Field(
        default=1024,
        ge=0,
        description="Most rows in one model call when the rows of concurrent requests are "
        "gathered into one call (one HistGradientBoosting call costs about the same for 1 row "
        "as for 100). 0: one model call per request.",
    )
    batch_max_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="How long an idle model waits for more requests before it calls. 0: no "
        "timer; requests that arrive during a call go together into the next one.",
    )
    batch_timeout_ms: float = Field(
        default=5000.0,
        ge=0.0,
        description="Longest a request waits in the batching queue for a model call to take "
        "it. One still waiting after that is answered 503 (and counted as an error) instead "
        "of being predicted: under overload the queue sheds the requests whose clients have "
        "most likely given up, and the others go on. A call that has started is never cut "
        "short. 0: no timeout.",
    )

    # --- garbage collector ---
    gc_freeze: bool = Field(
        default=True,
        description="Before serving, collect once, then freeze every object alive (imports, "
        "the model) out of the garbage collector's view (gc.freeze) and raise its young "
        f"generation threshold to {GC_GEN0_THRESHOLD}: a full collection then scans only "
        "recent objects, a fraction of a millisecond instead of 50-80 ms that stall every "
        "request in flight (the p99 tail).",
    )

    # --- readiness ---
    readiness_delay_seconds: float = Field(
        default=0.0,
        ge=0.0,
        description="Extra time to stay not-ready after the warm-up prediction (lets probes "
        "and rollout drills see the not-ready phase).",
    )

    # --- logs ---
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Level of the JSON logs on stdout (uvicorn's included)."
    )
    log_features: bool = Field(
        default=False, description="Put the feature values of each request into its log line."
    )

    @field_validator("model_sha256")
    @classmethod
    def _lowercase_hex(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be 64 hex digits")
        return value

    @field_validator("model_name", "model_version")
    @classmethod
    def _unset_when_blank(cls, value: str | None) -> str | None:
        return None if value is None or value.strip() == "" else value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def markdown_table() -> str:
    """The settings as the Markdown table in service/README.md (a test keeps them equal).

    Regenerate with ``python -m modelops_service.settings``.
    """
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if field.is_required():
            default = "required"
        else:
            default = "unset" if field.default is None else f"`{field.default}`"
        rows.append(f"| `MODELOPS_{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
