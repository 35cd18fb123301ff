"""`python -m modelops_operator`: kopf run --standalone with the settings' namespaces and ports.

Equivalent to `kopf run --standalone -m modelops_operator.handlers --all-namespaces
--liveness=http://0.0.0.0:8080/healthz`, with the namespaces and the port taken
from MODELOPS_OPERATOR_NAMESPACES / MODELOPS_OPERATOR_HEALTH_PORT.
"""

from __future__ import annotations

import kopf

from modelops_operator import logs
from modelops_operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    logs.configure(settings.log_level)
    import modelops_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
