"""The test rig: a real Kubernetes control plane on loopback with KWOK nodes.

See control_plane.py (start/stop, the Cluster handle), fixtures.py (the
pytest fixtures `cluster` and `namespace`) and __main__.py (make cluster-up).
"""

from tests.rig.control_plane import Cluster, CommandError, ControlPlane, RigError

__all__ = ["Cluster", "CommandError", "ControlPlane", "RigError"]
