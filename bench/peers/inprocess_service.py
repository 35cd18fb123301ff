"""Ours in process, no sockets: the service's app under uvicorn's HTTP protocol (the class
and settings ``python -m modelops_service`` runs), fed one request's bytes over in-memory
keep-alive connections; the CPU time of the process per request, each round, as JSON.
Run by bench/inprocess.py, one process per measurement, the service's code from the
environment (PYTHONPATH), its settings from MODELOPS_* as the service's.
Usage: python inprocess_service.py --out F --model DIR --rows 1 --concurrency 16
       --rounds 5 --round-seconds 1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging.config
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelops_service.__main__ import default_native_threads
from modelops_service.logs import lean_log_records, log_config
from modelops_service.settings import Settings

WARM_UP_REQUESTS = 50  # a connection, before the timed rounds


class Connection(asyncio.Transport):
    """One client connection: sends the request, takes uvicorn's writes, and sends the
    next request once the answer is whole, on a later pass of the loop (as a socket read
    would come). uvicorn writes an answer as two writes, the head and the body; the probe
    before anything is timed checks that on the first answer (``check_answer``)."""

    ports = itertools.count(40000)  # a client port each: ConnectionAge keys on it

    def __init__(self, protocol_factory: Callable[[], Any], request: bytes) -> None:
        super().__init__()
        self.request = request
        self.left = 0
        self.finished: asyncio.Future[None] | None = None
        self.writes: list[bytes] = []
        self.first: tuple[bytes, ...] = ()
        self.failed: bytes | None = None
        self.peer = ("127.0.0.1", next(self.ports))
        self.protocol = protocol_factory()
        self.protocol.connection_made(self)

    def run(self, requests: int) -> asyncio.Future[None]:
        """Send ``requests`` requests one after another; the future is done with the last."""
        self.left = requests
        self.finished = asyncio.get_running_loop().create_future()
        self.protocol.data_received(self.request)
        return self.finished

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(data)
        if len(self.writes) < 2:
            return
        head, body = self.writes
        self.writes = []
        self.first = self.first or (head, body)
        if not head.startswith(b"HTTP/1.1 200 ") and self.failed is None:
            self.failed = head + body
        self.left -= 1
        if self.left > 0:
            asyncio.get_running_loop().call_soon(self.protocol.data_received, self.request)
        elif self.finished is not None:
            self.finished.set_result(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": self.peer}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def check_answer(head: bytes, body: bytes) -> str:
    """The answer's body text, once the head says 200 and a Content-Length of the body's
    size (so an answer is exactly two writes); else SystemExit with the answer."""
    lines = head.decode("latin-1").split("\r\n")
    length = [
        v
        for k, _, v in (line.partition(": ") for line in lines[1:])
        if k.lower() == "content-length"
    ]
    if not lines[0].startswith("HTTP/1.1 200 ") or length != [str(len(body))]:
        raise SystemExit(f"ours answered {lines[0]!r}: {body[:300]!r}")
    return body.decode()


async def measure(app: Any, config: Any, request: bytes, args: argparse.Namespace) -> dict:
    """Start the app (lifespan, warm-up), probe one answer, then time ``args.rounds``
    rounds of requests over ``args.concurrency`` connections."""
    from uvicorn.server import ServerState

    lifespan = config.lifespan_class(config)
    await lifespan.startup()
    service = app.state.service
    while not service.ready:  # the warm-up prediction
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    state = ServerState()

    def protocol() -> Any:
        return config.http_protocol_class(config, state, lifespan.state, loop)

    probe = Connection(protocol, request)
    try:
        await asyncio.wait_for(probe.run(1), 30)
    except TimeoutError:
        raise SystemExit(f"no answer in two writes: {probe.writes!r:.300}") from None
    answer = check_answer(*probe.first)

    conns = [Connection(protocol, request) for _ in range(args.concurrency)]

    async def round_of(per_conn: int) -> None:
        await asyncio.gather(*(conn.run(per_conn) for conn in conns))
        failed = next((c.failed for c in conns if c.failed is not None), None)
        if failed is not None:
            raise SystemExit(f"ours answered: {failed[:300]!r}")

    async def cpu_per_request(per_conn: int) -> float:
        start = time.process_time()
        await round_of(per_conn)
        return (time.process_time() - start) / (per_conn * len(conns))

    # The warm-up sizes the rounds: about args.round_seconds of CPU each.
    warm = await cpu_per_request(WARM_UP_REQUESTS)
    per_conn = max(1, round(args.round_seconds / (warm * len(conns))))
    us = [await cpu_per_request(per_conn) * 1e6 for _ in range(args.rounds)]
    await lifespan.shutdown()
    return {"us_per_request": us, "answer": answer}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("--out", "--model"):
        parser.add_argument(flag, required=True)
    for flag in ("--rows", "--concurrency", "--rounds"):
        parser.add_argument(flag, type=int, required=True)
    parser.add_argument("--round-seconds", type=float, required=True)
    args = parser.parse_args(argv)

    # Set up as ``python -m modelops_service`` does, native threads before numpy's import.
    settings = Settings()
    logging.config.dictConfig(log_config(settings.log_level))
    lean_log_records()
    default_native_threads(settings)

    import uvicorn

    from bench.model import load_model
    from bench.servers import keyed_rows
    from modelops_service.app import create_app

    model = load_model(Path(args.model))
    body = keyed_rows(model.feature_names)(model.rows[: args.rows])
    request = (
        b"POST /v1/predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )
    config.load()
    loop_factory = config.get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(measure(app, config, request, args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
