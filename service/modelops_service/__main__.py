"""Entry point: ``python -m modelops_service --host H --port P``, or ``... fetch``.

``fetch`` (the init container) brings a model from its URI into a directory and
exits; see modelops_service.fetch. Everything below is about serving.

Settings come from MODELOPS_* environment variables; --host/--port override
MODELOPS_HOST/MODELOPS_PORT. Before uvicorn starts, the artifact's digest, and
its name and version when the deployment declares them, are checked (without
unpickling it): a mismatch exits with status 2 and a clear message, so nothing
is ever served from an unverified model, or under labels nothing selects. The lifespan
checks again on the bytes it actually loads.

numpy and scikit-learn are imported only after the settings are read, so that
OMP_NUM_THREADS (from MODELOPS_INFERENCE_THREADS unless already set) sizes
every thread's OpenMP pool when the runtime loads.
"""

from __future__ import annotations

import argparse
import functools
import logging
import logging.config
import os
import sys
from collections.abc import MutableMapping, Sequence

from pydantic import ValidationError

from modelops_service.logs import lean_log_records, log_config
from modelops_service.settings import Settings

EXIT_CONFIG = 2

log = logging.getLogger("modelops_service")


def default_native_threads(
    settings: Settings, environ: MutableMapping[str, str] | None = None
) -> None:
    """OMP_NUM_THREADS := MODELOPS_INFERENCE_THREADS, unless the environment already sets it.

    Must run before numpy or scikit-learn is imported: OpenMP reads it once, when the
    runtime loads, as the pool size of every thread. ``threadpool_limits`` in
    ``ModelService.load`` only reaches the thread that calls it, not the others that
    call the model or compute drift.
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    env.setdefault("OMP_NUM_THREADS", str(settings.inference_threads))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch"]:
        # Imports httpx, never numpy or scikit-learn: the init container starts fast.
        from modelops_service.fetch import main as fetch_main

        return fetch_main()
    parser = argparse.ArgumentParser(prog="python -m modelops_service", description=__doc__)
    parser.add_argument("--host", help="bind address (default: MODELOPS_HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="bind port (default: MODELOPS_PORT or 8080)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}

    logging.config.dictConfig(log_config("info"))
    lean_log_records()
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        log.error("invalid settings", extra={"fields": {"errors": err.errors(include_url=False)}})
        return EXIT_CONFIG
    config = log_config(settings.log_level)
    logging.config.dictConfig(config)
    default_native_threads(settings)

    # After default_native_threads: this imports numpy.
    from modelops_service.artifact import ArtifactRejectedError, verify_artifact

    try:
        verify_artifact(
            settings.model_dir,
            settings.model_sha256,
            name=settings.model_name,
            version=settings.model_version,
        )
    except ArtifactRejectedError as err:
        log.error(str(err), extra={"fields": {"model_dir": str(settings.model_dir)}})
        return EXIT_CONFIG
    except (OSError, ValidationError) as err:
        log.error(
            f"cannot read the model card in {settings.model_dir}: {err}",
            extra={"fields": {"model_dir": str(settings.model_dir)}},
        )
        return EXIT_CONFIG

    # Imported only now: a refused artifact exits before paying for FastAPI's import.
    import uvicorn

    from modelops_service.app import create_app
    from modelops_service.workers import shared_metrics_dir

    serve = functools.partial(
        uvicorn.run,
        host=settings.host,
        port=settings.port,
        log_config=config,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    if settings.workers > 1:
        # Each worker process builds its app from the same environment (--host and
        # --port only matter to the server, which binds once, here).
        with shared_metrics_dir():
            serve("modelops_service.app:create_app", factory=True, workers=settings.workers)
    else:
        serve(create_app(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
