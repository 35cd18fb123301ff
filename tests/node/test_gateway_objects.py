"""devstack/gateway.py without a node: what it applies and how it starts Traefik."""

from __future__ import annotations

import yaml

from devstack.gateway import (
    CONTROLLER,
    GATEWAY,
    NAMESPACE,
    USER,
    WEB_PORT,
    gateway_objects,
    rbac_objects,
    traefik_args,
)
from devstack.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "diabetes-gateway-canary.yaml"


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_the_example_route_names_the_gateway_and_its_listener_admits_the_route():
    route = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["kind"] == "HTTPRoute")
    objects = by_kind(gateway_objects(route["metadata"]["namespace"]))
    gateway, gateway_class = objects["Gateway"], objects["GatewayClass"]
    assert route["spec"]["parentRefs"] == [{"name": GATEWAY, "namespace": NAMESPACE}]
    assert gateway["metadata"] == {"name": GATEWAY, "namespace": NAMESPACE}
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    assert gateway_class["spec"]["controllerName"] == CONTROLLER
    (listener,) = gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", WEB_PORT)
    selector = listener["allowedRoutes"]["namespaces"]
    assert selector["from"] == "Selector"
    assert selector["selector"]["matchLabels"] == {"kubernetes.io/metadata.name": "models"}


def test_traefik_listens_on_the_listeners_port_and_never_calls_out():
    args = traefik_args()
    # Traefik serves a Gateway listener on the entry point of the same port
    assert f"--entryPoints.web.address=:{WEB_PORT}" in args
    assert "--providers.kubernetesGateway=true" in args
    assert {"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"} <= set(args)


def test_upstreams_rbac_is_bound_to_traefiks_user_as_upstream_wrote_it():
    # the shape of upstream's kubernetes-gateway-rbac.yml (make tools copies it): a role,
    # bound to the ServiceAccount of Traefik's pod
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "gateway-role"},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "gateway-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "gateway-role"},
        "subjects": [{"kind": "ServiceAccount", "name": "traefik-controller",
                      "namespace": "default"}],
    }  # fmt: skip
    ours = by_kind(rbac_objects([role, binding]))
    assert ours["ClusterRole"] == role
    assert ours["ClusterRoleBinding"] == {
        **binding,
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }
