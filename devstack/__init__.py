"""The dev stack: the real parts of modelops-bundle as local processes on loopback.

Tests, the no-Docker demo and the benchmarks build on this package; it never imports
them. One module per part:

- paths.py            where the repository, the tools of `make tools` and the pins are
- processes.py        free_port, spawn/stop by PID with a start-time check, the Ledger
- control_plane.py    etcd, kube-apiserver, KCM, scheduler and KWOK nodes (`ControlPlane`)
- cluster.py          the handle of a running cluster: kubectl, helm, waits (`Cluster`)
- pki.py              the rig's throwaway PKI and admin kubeconfig
- prometheus.py       a real Prometheus and Alertmanager as local processes; their HTTP APIs
- prometheus_operator.py  prometheus-operator on the real node, as kube-prometheus-stack runs it
- service_process.py  the model service (`python -m modelops_service`)
- operator_process.py the operator (`python -m modelops_operator`, the image's entry point)
- operator_chart.py   charts/model-operator installed on the rig: its ServiceAccount, settings
- images.py           the images built by the real Docker engine (hack/images.sh), containers
- canary.py           stable and canary services, a Prometheus scraping both, traffic
- node.py             a real node: kubelet, kube-proxy, containerd running real pods (`RealNode`)
- node_config.py      its layout (a network namespace of its own) and its components' files
- node_host.py        what it changes on the host, and the tear-down that puts it back
- gateway.py          Traefik on the real node: a Gateway API data plane (HTTPRoute weights)
- demo/               the no-Docker demo (`make demo-local`, `python -m devstack.demo`)
- __main__.py         `python -m devstack up [--node real]|down|env|status` (make cluster-up ...)
"""
