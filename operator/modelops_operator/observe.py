"""What the cluster and Prometheus show for one ModelDeployment: its Deployments, its canary.

Reads only; what the rollout makes of it is rollout.py's business (pure).
"""

from __future__ import annotations

from modelops_operator import analysis as an
from modelops_operator.constants import LABEL_INSTANCE
from modelops_operator.kube import KubeClient
from modelops_operator.prom import PrometheusClient, PrometheusError
from modelops_operator.rollout import Observation, stable_serves
from modelops_operator.workloads import MISSING, WorkloadState, pods_of_track, read_deployment


def read_workload(
    kube: KubeClient, namespace: str, name: str, track: str, release: str
) -> WorkloadState:
    """One Deployment; its pods too when it is not ready (they say why: crash loop, image)."""
    dep = kube.get("apps/v1", "Deployment", name, namespace)
    if dep is None:
        return MISSING
    state = read_deployment(dep)
    if state.is_ready:
        return state
    pods = kube.list("v1", "Pod", namespace, f"{LABEL_INSTANCE}={release}")
    return read_deployment(dep, pods_of_track(pods, track))


def analyze_canary(
    prometheus: PrometheusClient, obs: Observation, namespace: str, default_url: str
) -> tuple[an.Decision, dict[str, str], str]:
    """The canary's and the stable's figures from the recording rules, judged; with the
    queries and the URL.

    Any Prometheus failure is an Error decision: the rollout holds, never promotes.
    """
    assert obs.status.canary is not None
    assert obs.status.stable is not None
    canary, stable = obs.status.canary.model, obs.status.stable
    rollout = obs.spec.rollout
    url = rollout.analysis.prometheus_url or default_url
    window = an.window_seconds(rollout.interval_seconds)
    compared = stable_serves(obs.spec, obs.status)
    queries = an.build_queries(namespace, canary.name, canary.version, stable.name,
                               stable.version, window, compared=compared)  # fmt: skip
    try:
        results = {key: prometheus.query(url, promql) for key, promql in queries.items()}
    except PrometheusError as exc:
        return an.error_decision(str(exc)), queries, url
    figures = an.figures_from(results)
    decision = an.decide(figures, rollout.analysis, rollout.compare, compared=compared)
    return decision, queries, url
