"""kopf handlers: thin. They build the shared clients once and drive `Reconciler`.

Run: kopf run --standalone -m modelops_operator.handlers --liveness=http://0.0.0.0:8080/healthz

Each ModelDeployment gets one daemon that reconciles every `tick_seconds`
(canary steps are due on the clock, deleted monitoring objects come back); a
spec change pokes the daemon so it reconciles at once. Status is written by the
reconciler itself (conditional on resourceVersion), not through kopf's
handler results.

The Deployments we own are watched too (a raw `on.event` handler: no kopf
annotations or finalizers on them): when someone scales or edits one, the owner's
daemon is poked at once and re-applies with a drift check, and a `DriftCorrected`
Event says what was put back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from modelops_operator import logs
from modelops_operator.constants import (
    GROUP,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    MANAGED_BY,
    PLURAL,
    VERSION,
)
from modelops_operator.kube import KubeClient
from modelops_operator.metrics import OperatorMetrics
from modelops_operator.prom import PrometheusClient
from modelops_operator.reconcile import Reconciler
from modelops_operator.render import ChartRenderer
from modelops_operator.requests import ANNOTATION as REQUEST_ANNOTATION
from modelops_operator.settings import OperatorSettings

RESOURCE = (GROUP, VERSION, PLURAL)


_QUIET_HANDLERS = ("owned_deployment_changed", "request_arrived")


class _QuietWatch(logging.Filter):
    """kopf logs every handler success at INFO: one line per Deployment event otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f"'{h}' succeeded" in message for h in _QUIET_HANDLERS)


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    config = OperatorSettings()
    logs.configure(config.log_level)  # `kopf run` installed its text handler: JSON lines instead
    # reconciles wait on the API server and helm, not on this process's CPU
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="reconcile")
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prometheus query otherwise
    logging.getLogger("kopf.objects").addFilter(_QuietWatch())
    # kopf's own bookkeeping lives in annotations, so status is only what we write
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    if config.namespaces:
        # namespace-scoped: no cluster-wide namespace/CRD scans, which the namespaced
        # RBAC forbids (kopf would retry them for about a minute and log each refusal)
        settings.scanning.disabled = True
    metrics = OperatorMetrics()
    metrics.serve(config.metrics_port)
    memo.reconciler = Reconciler(
        config,
        KubeClient.from_kubeconfig(config.kubeconfig, pool_size=config.workers),
        ChartRenderer(config.chart_path, config.helm_binary),
        PrometheusClient(config.prometheus_timeout_seconds),
        metrics,
    )
    memo.pokes = {}
    logger.info(
        "modelops operator: chart %s, prometheus %s, tick %ss, metrics :%s",
        config.chart_path,
        config.prometheus_url,
        config.tick_seconds,
        config.metrics_port,
    )


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler | None = memo.get("reconciler")
    if reconciler is not None:
        reconciler.close()


def _poke(memo: kopf.Memo, uid: str) -> asyncio.Event:
    return memo.pokes.setdefault(uid, asyncio.Event())


@kopf.on.update(*RESOURCE, field="spec")
async def spec_changed(uid: str, memo: kopf.Memo, **_: Any) -> None:
    _poke(memo, uid).set()


@kopf.on.event(*RESOURCE, annotations={REQUEST_ANNOTATION: kopf.PRESENT})
async def request_arrived(uid: str, memo: kopf.Memo, **_: Any) -> None:
    """A request of `kubectl modelops`: consumed at once, not at the next tick."""
    if uid in memo.pokes:
        memo.pokes[uid].set()


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_OWNER: kopf.PRESENT},
)
async def owned_deployment_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler | None = memo.get("reconciler")
    obj = event.get("object")
    if reconciler is None or not isinstance(obj, dict):
        return
    uid = reconciler.owned_object_changed(event.get("type"), dict(obj))
    if uid is not None and uid in memo.pokes:
        memo.pokes[uid].set()


@kopf.daemon(*RESOURCE, cancellation_timeout=10.0)
async def rollout_loop(
    name: str,
    namespace: str | None,
    uid: str,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    reconciler: Reconciler = memo.reconciler
    assert namespace is not None  # ModelDeployments are namespaced
    poke = _poke(memo, uid)
    tick = reconciler.settings.tick_seconds
    try:
        while not stopped:
            poke.clear()
            try:
                result = await asyncio.to_thread(reconciler.reconcile, namespace, name)
                logger.debug("reconciled: %s", result)
                if result == "gone":
                    return
            except Exception as exc:  # level-based: the next tick tries again
                logger.exception("reconcile failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                # +-10% jitter: objects created together do not tick together forever
                await asyncio.wait_for(poke.wait(), timeout=tick * random.uniform(0.9, 1.1))
    finally:
        memo.pokes.pop(uid, None)
        if stopped:
            reconciler.forget(namespace, name, uid)
