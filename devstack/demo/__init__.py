"""The demo (`make demo-local`, `python -m devstack.demo`).

story.py narrates a canary that is promoted (diabetes 1 -> 3) and two that are rolled back
(wine 1 -> 2, diabetes 3 -> 2) on one of two stages (stage.py), and stops every process it
started by PID on exit or Ctrl-C:

- real_node.py: a real node running the project's images, with prometheus-operator and the
  operator in-cluster; where the machine can run containers (root, a Docker engine);
- simulated.py: KWOK nodes, with the operator, the model services (pods.py) and Prometheus
  as local processes; anywhere else.
"""
