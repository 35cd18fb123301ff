"""BatchingPredictor: concurrent requests share model calls, and each gets its own answer.

A fake model stands in for the estimator: its answer for a row is the row's first value,
so a mixed-up slice shows at once. No timing is asserted anywhere.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from devstack.service_process import ServiceProcess
from modelops_service.app import create_app
from modelops_service.artifact import Prediction
from modelops_service.card import read_card
from modelops_service.predictor import _MAX_PASSES, BatchingPredictor, QueueTimeoutError
from modelops_service.settings import Settings
from tests.support.rows import in_range_rows
from tests.support.service_waits import until_ready

POISON = -1.0  # a row whose first value is this makes the fake model raise
HANG_GUARD = 30.0  # seconds: a lost request fails the test instead of hanging it


def run(coro):
    """asyncio.run, with a lost (never answered) request turned into a failure."""

    async def guarded():
        return await asyncio.wait_for(coro, HANG_GUARD)

    return asyncio.run(guarded())


class FakeModel:
    def __init__(self) -> None:
        self.calls: list[int] = []  # rows per call

    def infer(self, features: np.ndarray) -> Prediction:
        self.calls.append(len(features))
        if (features[:, 0] == POISON).any():
            raise ValueError("the model cannot take this row")
        first = features[:, 0].copy()
        return Prediction(
            predictions=first,
            probabilities=np.stack([first, -first], axis=1),
            confidence=first,
            signal=first,
        )


def rows(tag: int, n: int) -> np.ndarray:
    """n rows whose first value identifies request ``tag`` and the row within it."""
    out = np.zeros((n, 3))
    out[:, 0] = tag * 1000 + np.arange(n)
    return out


def predictor(model: FakeModel, max_rows: int = 1024) -> tuple[BatchingPredictor, list[float]]:
    seconds: list[float] = []
    return BatchingPredictor(model, seconds.append, max_rows=max_rows), seconds


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model = FakeModel()
    batching, seconds = predictor(model)
    sizes = [1 + (i % 7) for i in range(200)]

    async def main() -> list[Prediction]:
        return await asyncio.gather(*(batching.predict(rows(i, n)) for i, n in enumerate(sizes)))

    answers = run(main())
    for i, (n, answer) in enumerate(zip(sizes, answers, strict=True)):
        expected = rows(i, n)[:, 0]
        assert np.array_equal(answer.predictions, expected)
        assert np.array_equal(answer.probabilities, np.stack([expected, -expected], axis=1))
        assert len(answer) == n
    # Submitted in one pass of the loop: far fewer model calls than requests.
    assert sum(model.calls) == sum(sizes)
    assert len(model.calls) <= -(-sum(sizes) // 1024) + 1
    assert len(seconds) == len(model.calls)


async def one_a_pass(batching: BatchingPredictor, count: int) -> list[Prediction]:
    """``count`` single-row requests, request i ready i passes of the event loop after the
    first."""

    async def arriving(i: int) -> Prediction:
        for _ in range(i):
            await asyncio.sleep(0)
        return await batching.predict(rows(i, 1))

    return await asyncio.gather(*(arriving(i) for i in range(count)))


def test_requests_reaching_the_queue_over_a_few_loop_passes_share_one_call() -> None:
    model = FakeModel()
    batching, _ = predictor(model)
    answers = run(one_a_pass(batching, 6))
    assert [a.predictions[0] for a in answers] == [i * 1000 for i in range(6)]
    assert model.calls == [6]


class PassCounter:
    """Counts passes of the event loop (a task that yields once a pass) and notes, for
    each model call, the pass it was made on."""

    def __init__(self, model: FakeModel) -> None:
        self.passes = 0
        self.call_passes: list[int] = []
        infer = model.infer

        def noting(features: np.ndarray) -> Prediction:
            self.call_passes.append(self.passes)
            return infer(features)

        model.infer = noting  # type: ignore[method-assign]

    async def count(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.passes += 1


def test_a_burst_waits_one_pass_and_a_full_batch_none() -> None:
    """Requests ready together are counted on the first look and called on the next pass
    (nothing joined); a batch that is full on the first look is called at once."""
    called_on = {}
    for max_rows in (10, 3):
        model = FakeModel()
        batching, _ = predictor(model, max_rows=max_rows)
        counter = PassCounter(model)

        async def main(batching: BatchingPredictor = batching, counter: PassCounter = counter):
            ticking = asyncio.create_task(counter.count())
            await asyncio.gather(*(batching.predict(rows(i, 1)) for i in range(3)))
            ticking.cancel()

        run(main())
        assert model.calls == [3]
        called_on[max_rows] = counter.call_passes[0]
    assert called_on[10] == called_on[3] + 1


def test_requests_that_keep_arriving_are_called_after_at_most_max_passes() -> None:
    model = FakeModel()
    batching, _ = predictor(model)
    answers = run(one_a_pass(batching, 20))
    assert [a.predictions[0] for a in answers] == [i * 1000 for i in range(20)]
    assert model.calls[0] == _MAX_PASSES + 1  # then the call, not a wait for the rest
    assert sum(model.calls) == 20


def test_no_call_exceeds_max_rows_except_a_larger_request_alone() -> None:
    model = FakeModel()
    batching, _ = predictor(model, max_rows=10)
    sizes = [3, 4, 5, 25, 2, 9, 1]

    async def main() -> list[Prediction]:
        return await asyncio.gather(*(batching.predict(rows(i, n)) for i, n in enumerate(sizes)))

    answers = run(main())
    assert [len(a) for a in answers] == sizes
    assert all(n <= 10 or n == 25 for n in model.calls)
    assert 25 in model.calls  # the large request went alone, not split
    assert sum(model.calls) == sum(sizes)


def test_a_failing_request_fails_alone() -> None:
    model = FakeModel()
    batching, _ = predictor(model)
    bad = {3, 17, 42}

    def request(i: int) -> np.ndarray:
        x = rows(i, 2)
        if i in bad:
            x[1, 0] = POISON
        return x

    async def main() -> list[Prediction | BaseException]:
        return await asyncio.gather(
            *(batching.predict(request(i)) for i in range(60)), return_exceptions=True
        )

    answers = run(main())
    for i, answer in enumerate(answers):
        if i in bad:
            assert isinstance(answer, ValueError)
        else:
            assert isinstance(answer, Prediction)
            assert np.array_equal(answer.predictions, rows(i, 2)[:, 0])


def test_a_request_that_went_away_leaves_the_others_intact() -> None:
    model = FakeModel()
    batching, _ = predictor(model)

    async def main() -> tuple[list[Prediction], asyncio.Task]:
        gone = asyncio.ensure_future(batching.predict(rows(99, 5)))
        others = [asyncio.ensure_future(batching.predict(rows(i, 2))) for i in range(10)]
        await asyncio.sleep(0)  # queued, not yet called
        gone.cancel()
        return await asyncio.gather(*others), gone

    answers, gone = run(main())
    assert gone.cancelled()
    for i, answer in enumerate(answers):
        assert np.array_equal(answer.predictions, rows(i, 2)[:, 0])
    assert sum(model.calls) == 20  # the cancelled rows never reached the model


def test_requests_after_a_quiet_spell_are_answered() -> None:
    model = FakeModel()
    batching, _ = predictor(model)

    async def main() -> list[Prediction]:
        first = await batching.predict(rows(1, 1))
        await asyncio.sleep(0.01)
        second = await asyncio.gather(*(batching.predict(rows(i, 1)) for i in (2, 3)))
        return [first, *second]

    answers = run(main())
    assert [a.predictions[0] for a in answers] == [1000.0, 2000.0, 3000.0]


def test_close_fails_what_is_queued_and_refuses_more() -> None:
    model = FakeModel()
    batching, _ = predictor(model)

    async def main() -> tuple[BaseException | Prediction, ...]:
        pending = asyncio.ensure_future(batching.predict(rows(1, 1)))
        await batching.aclose()  # before the worker ran: the request is failed, not lost
        with pytest.raises(RuntimeError):
            await batching.predict(rows(2, 1))
        return tuple(await asyncio.gather(pending, return_exceptions=True))

    (answer,) = run(main())
    assert isinstance(answer, RuntimeError)


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        BatchingPredictor(FakeModel(), lambda _: None, max_rows=0)


def test_concurrent_http_requests_each_get_their_own_answer(
    services: dict[str, ServiceProcess],
) -> None:
    """The real service (batching on by default) under 32 concurrent clients: every
    answer equals model.predict on that request's own rows; the malformed requests
    interleaved with them get their 4xx and change nobody else's answer."""
    svc = services["wine"]
    model = joblib.load(svc.model_dir / "model.joblib")
    names = read_card(svc.model_dir).feature_names
    data = in_range_rows(svc.model_dir, "wine")
    rng = np.random.default_rng(0)
    picks = [rng.choice(len(data), size=int(rng.integers(1, 8))) for _ in range(300)]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, object]:
        instances = [dict(zip(names, map(float, data[j]), strict=True)) for j in picks[i]]
        if i % 10 == 0:
            instances[0][names[0]] = "not a number"
        resp = await client.post("/v1/predict", json={"instances": instances})
        return resp.status_code, resp.json()

    async def main() -> list[tuple[int, object]]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=svc.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(len(picks))))

    for i, (status, body) in enumerate(run(main())):
        if i % 10 == 0:
            assert status == 422, body
            continue
        assert status == 200, body
        assert body["predictions"] == model.predict(data[picks[i]]).tolist()
        np.testing.assert_allclose(
            body["probabilities"], model.predict_proba(data[picks[i]]), rtol=1e-12
        )


def test_a_new_event_loop_is_served_too() -> None:
    """A test client (or a restarted server) may serve from another loop than the last."""
    model = FakeModel()
    batching, _ = predictor(model)
    first = run(batching.predict(rows(1, 1)))
    second = run(batching.predict(rows(2, 1)))  # asyncio.run: a fresh loop
    assert (first.predictions[0], second.predictions[0]) == (1000.0, 2000.0)


class SlowModel(FakeModel):
    """FakeModel whose call blocks the event loop (as a real model call does) when a row
    starts with SLOW."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def infer(self, features: np.ndarray) -> Prediction:
        if (features[:, 0] == SLOW).any():
            time.sleep(self.seconds)
        return super().infer(features)


SLOW = -2.0


def slow_rows() -> np.ndarray:
    out = np.zeros((1, 3))
    out[0, 0] = SLOW
    return out


def test_requests_queued_past_the_timeout_fail_alone_and_never_reach_the_model() -> None:
    """A call that takes longer than the timeout: the requests in it get their answers
    (a started call is never cut short), those queued behind it past their deadline fail
    with QueueTimeoutError without reaching the model, and the next ones are served."""
    model = SlowModel(seconds=0.3)
    # max_rows=2: the slow request and one neighbour share the first call.
    batching = BatchingPredictor(model, lambda _: None, max_rows=2, timeout=0.1)

    async def main():
        first = await asyncio.gather(
            batching.predict(slow_rows()),
            batching.predict(rows(1, 1)),  # in the slow call
            batching.predict(rows(2, 1)),  # queued behind it
            batching.predict(rows(3, 1)),
            return_exceptions=True,
        )
        later = await batching.predict(rows(4, 1))  # after the stall: a fresh deadline
        return first, later

    (slow, in_call, queued_a, queued_b), later = run(main())
    assert slow.predictions[0] == SLOW
    assert in_call.predictions[0] == 1000.0
    for answer in (queued_a, queued_b):
        assert isinstance(answer, QueueTimeoutError), answer
        assert answer.waited > answer.timeout == 0.1
        assert "timeout" in str(answer)
    assert later.predictions[0] == 4000.0
    assert model.calls == [2, 1]  # the expired rows never reached the model


def test_without_a_timeout_every_queued_request_waits_for_its_turn() -> None:
    model = SlowModel(seconds=0.2)
    batching = BatchingPredictor(model, lambda _: None, max_rows=1, timeout=None)

    async def main():
        return await asyncio.gather(
            batching.predict(slow_rows()), *(batching.predict(rows(i, 1)) for i in range(1, 4))
        )

    answers = run(main())
    assert [a.predictions[0] for a in answers] == [SLOW, 1000.0, 2000.0, 3000.0]


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        BatchingPredictor(FakeModel(), lambda _: None, max_rows=1, timeout=0)


def test_rows_are_recorded_once_per_call_and_never_for_the_warm_up_or_failures() -> None:
    model = FakeModel()
    recorded: list[np.ndarray] = []
    requests: list[int] = []

    def on_rows(features: np.ndarray, prediction: Prediction, sizes: list[int]) -> None:
        assert np.array_equal(features[:, 0], prediction.signal)  # rows match their outputs
        assert sum(sizes) == len(features)
        recorded.append(features[:, 0].copy())
        requests.extend(sizes)

    batching = BatchingPredictor(model, lambda _: None, max_rows=1024, on_rows=on_rows)

    async def main():
        warm = batching.predict(rows(9, 1), record=False)
        bad = rows(8, 2)
        bad[1, 0] = POISON
        return await asyncio.gather(
            warm,
            batching.predict(bad),
            *(batching.predict(rows(i, 2)) for i in range(3)),
            return_exceptions=True,
        )

    answers = run(main())
    assert isinstance(answers[1], ValueError)
    got = np.sort(np.concatenate(recorded))
    expected = np.sort(np.concatenate([rows(i, 2)[:, 0] for i in range(3)]))
    assert np.array_equal(got, expected)  # not the warm-up row, not the failed request's
    assert requests == [2, 2, 2]  # the answered requests, by their rows


def test_a_request_timed_out_in_the_queue_is_a_503_and_its_neighbours_are_served(
    model_root: Path,
) -> None:
    """Over HTTP (in process): one request per model call (MODELOPS_BATCH_MAX_ROWS=1); the
    first call stalls the loop past the timeout; the requests queued behind it get 503
    with Retry-After, counted as 5xx and as error rows; the stalled one and later ones
    get their predictions."""
    app = create_app(
        Settings(model_dir=model_root / "diabetes" / "1", batch_max_rows=1, batch_timeout_ms=50)
    )
    svc = app.state.service
    card = svc.card
    normal = [f.mean for f in card.features]
    stalling = [f.min for f in card.features]  # in range, and recognisable

    async def scenario():
        async with app.router.lifespan_context(app):
            await until_ready(app)
            real_infer = svc.model.infer

            def infer(features):
                if (features[:, 0] == stalling[0]).any():
                    time.sleep(0.3)
                return real_infer(features)

            svc.model.infer = infer
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await asyncio.gather(
                    client.post("/v1/predict", json={"instances": [stalling]}),
                    *(client.post("/v1/predict", json={"instances": [normal]}) for _ in range(3)),
                )
                after = await client.post("/v1/predict", json={"instances": [normal]})
                metrics = (await client.get("/metrics")).text
            return first, after, metrics

    (stalled, *queued), after, metrics = run(scenario())
    assert stalled.status_code == 200
    assert after.status_code == 200
    assert [r.status_code for r in queued] == [503, 503, 503]
    for r in queued:
        body = r.json()
        assert body["reasons"] == ["prediction_timeout"]
        assert "timed out" in body["error"]
        assert r.headers["retry-after"] == "1"
    labels = 'model="diabetes",outcome="error",version="1"'
    assert f"model_predictions_total{{{labels}}} 3.0" in metrics
    assert (
        'http_requests_total{handler="/v1/predict",method="POST",model="diabetes",'
        'status="5xx",version="1"} 3.0'
    ) in metrics
