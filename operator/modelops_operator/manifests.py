"""What to apply for a status: chart values -> `helm template` -> the owned apply set.

The chart is the one source of manifests; this module only chooses its values
(the Deployments the status asks for, the labels monitoring selectors need)
and owns what it renders. It also learns the Deployment names from the chart,
once per object, since the rollout observes those Deployments before it decides.
"""

from __future__ import annotations

from modelops_operator import monitoring
from modelops_operator.applyset import ApplySet, Owner, build_apply_set
from modelops_operator.constants import TRACK_CANARY, TRACK_STABLE
from modelops_operator.models import ModelDeploymentSpec, ModelDeploymentStatus
from modelops_operator.monitoring import Discovered, SelectorLabels
from modelops_operator.render import ChartRenderer
from modelops_operator.rollout import desired_workloads
from modelops_operator.scaling import scaled_object_values
from modelops_operator.selectors import MonitoringReport
from modelops_operator.settings import OperatorSettings
from modelops_operator.values import chart_values


class Manifests:
    def __init__(self, settings: OperatorSettings, renderer: ChartRenderer) -> None:
        self.settings = settings
        self.renderer = renderer
        self._names: dict[tuple[str, str], dict[str, str]] = {}

    def build(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        found: Discovered,
    ) -> tuple[ApplySet, MonitoringReport]:
        """The apply set for `status` and what monitoring will make of it (RenderError)."""
        match = spec.monitoring.match_selectors
        if match is None:
            match = self.settings.selector_mode == "label"
        labels = monitoring.selector_labels(found, owner.namespace) if match else SelectorLabels()
        values = chart_values(
            spec,
            desired_workloads(spec, status),
            service_monitor_labels=labels.service_monitor,
            rule_labels=labels.rule,
            dashboard_labels=labels.dashboard,
            scaled_object=scaled_object_values(spec, owner.name, self.settings.prometheus_url),
        )
        rendered = self.renderer.render(owner.name, owner.namespace, values)
        apply_set = build_apply_set(rendered, owner, served_kinds=found.served)
        return apply_set, monitoring.report(spec, apply_set, owner.namespace, found)

    def deployment_names(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        found: Discovered,
    ) -> dict[str, str]:
        """Names of the stable and canary Deployments, learned from the chart once per object.

        The stable name comes from a render of what the status runs now (the same
        values the apply step renders in a steady state, so a cache hit); the
        canary is `<stable>-canary` by the chart's contract (templates/_helpers.tpl).
        """
        key = (owner.namespace, owner.name)
        names = self._names.get(key)
        if names is None:
            apply_set, _ = self.build(spec, status, owner, found)
            stable = apply_set.deployments()[TRACK_STABLE]["metadata"]["name"]
            names = {TRACK_STABLE: stable, TRACK_CANARY: f"{stable}-canary"}
            self._names[key] = names
        return names

    def forget(self, namespace: str, name: str) -> None:
        self._names.pop((namespace, name), None)
