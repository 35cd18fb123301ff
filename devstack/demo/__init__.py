"""The no-Docker demo (`make demo-local`, `python -m devstack.demo`).

What runs where:

- the dev stack's real control plane (devstack.control_plane: etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler) as local processes on loopback, with nodes
  simulated by KWOK: pods are scheduled and marked Ready, but nothing inside a pod runs;
- the operator (`python -m modelops_operator`) as a local process;
- the real model service for each model version that has pods, as local processes
  (pods.py: one process per version, started and stopped as its pods come and go), scraped
  by a local Prometheus that evaluates alerts/modelops.rules.yaml;
- the traffic generator (`python -m loadtest`) through a loopback stand-in for each Service
  that picks a Ready pod at random and forwards to the process behind it.

story.py narrates a canary that is promoted (diabetes 1 -> 2) and one that is rolled back
(wine 1 -> 2), and stops every process it started by PID on exit or Ctrl-C.
"""
