"""Traffic generator for the model service: bounded scenarios, progress, a summary.

    python -m loadtest --url http://127.0.0.1:8080 --scenario drift --rate 50 --duration 60

From Python: ``loadtest.run(url, scenario, rate, duration, ...) -> Summary``.
Scenarios and their rows live in ``loadtest.scenarios`` (shared with the locustfile).
"""

from loadtest.runner import LoadTestError, Summary, run
from loadtest.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "LoadTestError", "Summary", "run"]
