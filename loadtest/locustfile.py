"""Locust users for the model service, for those who prefer locust's web UI.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --scenario drift
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --headless -u 10 -r 5 -t 1m

Each user sends about one request per second (``--user-rate``), so the number of users is
the request rate; change it in the UI for a spike (``python -m loadtest --scenario spike``
does the same unattended). The rows and requests are those of ``python -m loadtest``
(``loadtest.scenarios``): ``normal``, ``drift`` (the shift ramps over ``--drift-seconds``),
``bad-input``. A bad input answered 4xx counts as a success in locust's statistics (it is
the answer the service owes), under the name ``/v1/predict [<kind>]``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from locust import FastHttpUser, constant_throughput, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from loadtest.scenarios import load_rows, make_scenario


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument(
        "--scenario", choices=["normal", "drift", "bad-input"], default="normal",
        help="what to send (loadtest.scenarios)",
    )  # fmt: skip
    parser.add_argument("--rows", default="", help="JSON Lines of real rows to draw from")
    parser.add_argument("--drift-seconds", type=float, default=300.0, help="drift ramp length")
    parser.add_argument("--user-rate", type=float, default=1.0, help="requests/s per user")


class ModelServiceUser(FastHttpUser):
    def wait_time(self) -> float:
        return constant_throughput(self.environment.parsed_options.user_rate)(self)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        card = self.client.get("/v1/model", name="/v1/model").json()
        self.scenario = make_scenario(
            options.scenario,
            card,
            rate=options.user_rate,
            duration=options.drift_seconds,
            seed=random.randrange(1 << 30),
            base_rows=load_rows(options.rows) if options.rows else (),
        )
        self.started = time.monotonic()

    @task
    def predict(self) -> None:
        req = self.scenario.request(time.monotonic() - self.started)
        name = req.path if req.kind == "ok" else f"{req.path} [{req.kind}]"
        with self.client.post(
            req.path,
            data=req.body,
            headers={"content-type": req.content_type},
            name=name,
            catch_response=True,
        ) as response:
            if req.kind != "ok" and 400 <= response.status_code < 500:
                response.success()
