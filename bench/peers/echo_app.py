"""The server's share of the stack floor: a raw ASGI app that reads each request body whole
and answers ours' answer to it, byte for byte, with no framework, validation or model.

Runs in the project's .venv under the uvicorn settings of ours (one worker, no access log,
no server header). The answers are read from BENCH_ANSWERS_FILE (JSON: request body length
-> ours' answer), which the benchmark writes once ours has answered; the file is read again
when a length is missing, so the server can start before it exists.

``POST /pace`` with a number of seconds as its body sets a filler: CPU spent on each request
before answering (0, the default: none), so that the echo answers at another server's pace.
The server's share at that pace is then the echo's CPU per request less the filler
(bench/floor.py). The filler spins on the clock (no system call): on a core the echo has to
itself its CPU equals the filler, and a turn of another process in it counts as filler, so
the share comes out lower, never higher.
Usage: BENCH_ANSWERS_FILE=path uvicorn echo_app:app --port P
"""

import json
import os
import time

ANSWERS: dict[int, bytes] = {}
JSON_HEADERS = [(b"content-type", b"application/json")]
filler_s = 0.0


def answer_to(size: int) -> bytes | None:
    if size not in ANSWERS:
        try:
            with open(os.environ["BENCH_ANSWERS_FILE"], "rb") as f:
                ANSWERS.update({int(k): v.encode() for k, v in json.load(f).items()})
        except OSError:
            return None
    return ANSWERS.get(size)


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def set_pace(receive, send):
    global filler_s
    message = await receive()  # a few bytes: one message
    filler_s = float(message.get("body", b"0"))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/pace":
        await set_pace(receive, send)
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if filler_s:
        spin(filler_s)
    body = b"ok" if scope["method"] == "GET" else answer_to(size)
    status = 200 if body is not None else 404
    body = body or b""
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
