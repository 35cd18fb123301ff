"""Waiting on the model service in tests: the app in process until its model is loaded,
the real process's log until the lines a test looks for are written."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from devstack.service_process import ServiceProcess


async def until_ready(app) -> None:
    """The app's model loaded (its lifespan started the load in the background)."""
    for _ in range(2000):
        if app.state.service.ready:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never ready")


def log_lines_until(
    svc: ServiceProcess, done: Callable[[list[dict]], bool], timeout: float = 30.0
) -> list[dict]:
    """The parsed log, once ``done(lines)`` holds: a request's line is written after
    its response is sent, so it can trail the response by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in svc.logs().splitlines() if line.strip()]
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)
