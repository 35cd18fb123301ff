"""templates/NOTES.txt: what a user reads after `helm install` (issue 17, item 5).

helm 4 renders NOTES offline (`install --dry-run=client`); helm 3 wants a cluster for that.
"""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, helm

pytestmark = pytest.mark.render


def notes(*sets: str) -> str:
    args = ["install", "demo", SERVICE, "--dry-run=client", "-n", "models"]
    args += ["--set", "monitoring.missingCrds=render"]
    for value in sets:
        args += ["--set", value]
    proc = helm(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_should_name_both_selectors_and_print_the_sets_that_fix_a_mismatch() -> None:
    text = notes()

    assert "serviceMonitorSelector" in text
    assert "ruleSelector" in text
    assert "helm upgrade demo <this chart> -n models --reuse-values" in text
    assert "--set monitoring.serviceMonitor.labels.release=<stack release>" in text
    assert "--set monitoring.prometheusRule.labels.release=<stack release>" in text


def test_should_offer_the_select_everything_alternative() -> None:
    text = notes()

    assert "prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false" in text
    assert "prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false" in text


def test_should_say_which_stack_release_the_labels_fit() -> None:
    assert 'fit a stack installed as release "kube-prometheus-stack"' in notes()
    assert 'fit a stack installed as release "kps"' in notes(
        "monitoring.serviceMonitor.labels.release=kps",
        "monitoring.prometheusRule.labels.release=kps",
    )
    unlabelled = notes(
        "monitoring.serviceMonitor.labels.release=null",
        "monitoring.prometheusRule.labels.release=null",
    )
    assert "without a `release` label only a Prometheus that selects every object" in unlabelled


def test_should_find_the_grafana_service_by_label_not_by_a_release_name() -> None:
    text = notes()

    assert "kube-prometheus-stack-grafana" not in text
    assert "get service -l app.kubernetes.io/name=grafana -o name" in text


def test_should_promise_the_folder_only_with_the_sidecar_settings_that_create_it() -> None:
    text = notes()

    assert 'folder "ModelOps" only when the sidecar reads the grafana_folder annotation' in text
    assert "a default sidecar puts them in the General folder" in text
    without = notes("monitoring.dashboards.folderAnnotation=")
    assert "ModelOps" not in without


def test_should_leave_the_selector_advice_out_without_monitoring_objects() -> None:
    text = notes(
        "monitoring.serviceMonitor.enabled=false", "monitoring.prometheusRule.enabled=false"
    )

    assert "serviceMonitorSelector" not in text


def test_should_say_who_sets_the_replicas() -> None:
    assert "(2 replicas)" in notes("replicaCount=2")
    assert "(autoscaled 2-6 replicas)" in notes(
        "autoscaling.enabled=true", "autoscaling.minReplicas=2", "autoscaling.maxReplicas=6"
    )
    keda = notes(
        "scaledObject.enabled=true", "scaledObject.prometheusUrl=http://p:9090",
        "scaledObject.minReplicas=1", "scaledObject.maxReplicas=4",
    )  # fmt: skip
    assert "(scaled by KEDA 1-4 replicas)" in keda
