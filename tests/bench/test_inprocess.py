"""bench/inprocess.py: ours under uvicorn's HTTP protocol with no sockets, A/B by variant."""

from __future__ import annotations

import pytest

from bench import inprocess
from bench.peers.inprocess_service import check_answer

SHORT = ["--concurrency", "4", "--rounds", "2", "--round-seconds", "0.05"]


@pytest.mark.process
def test_ours_and_a_variant_are_measured_each_in_processes_of_their_own() -> None:
    lines = inprocess.main(
        [*SHORT, "--runs", "2", "--variant", "quiet", "MODELOPS_LOG_LEVEL=warning"]
    )

    assert lines[0].startswith(
        "In process: 1 row(s) a request x 4 connections, 2 rounds of about 0.05 s"
    )
    ours, quiet = lines[2].split(), lines[3].split()
    assert ours[0] == "ours"
    assert float(ours[1]) > 0
    assert quiet[:2] == ["ours", "[quiet]"]
    assert float(quiet[2]) > 0
    low, high = map(float, quiet[3].split("-"))
    assert 0 < low <= float(quiet[2]) <= high
    assert quiet[4].endswith("x")
    assert quiet[5].startswith("[")


@pytest.mark.process
def test_a_hundred_row_request_is_answered_with_the_models_predictions() -> None:
    lines = inprocess.main(["--rows", "100", *SHORT, "--runs", "1"])
    assert float(lines[2].split()[1]) > 0  # check_predictions passed on 100 rows


@pytest.mark.process
def test_a_service_that_refuses_the_request_is_not_measured() -> None:
    with pytest.raises(SystemExit, match=r"(?s)exit 1.*HTTP/1.1 413"):
        inprocess.main([*SHORT, "--runs", "1", "--variant", "tiny", "MODELOPS_MAX_BODY_BYTES=10"])


def test_an_answer_must_be_a_200_whose_body_is_its_content_length() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"
    assert check_answer(head, b"{}") == "{}"
    with pytest.raises(SystemExit, match="413"):
        check_answer(head.replace(b"200 OK", b"413 Payload Too Large"), b"{}")
    with pytest.raises(SystemExit):
        check_answer(head, b'{"a"')  # more body than the head declared


def test_the_ratio_is_the_median_of_each_runs_ratio_to_ours() -> None:
    args = inprocess.parse_args(["--runs", "3", "--variant", "b", "X=1"])
    results = {
        "ours": [[10.0, 10.0], [20.0, 20.0], [10.0, 10.0]],
        "b": [[11.0, 11.0], [30.0, 30.0], [12.0, 12.0]],
    }
    lines = inprocess.report(results, args)
    assert lines[2].split() == ["ours", "10.0", "10.0-20.0"]
    assert lines[3].split() == ["ours", "[b]", "12.0", "11.0-30.0", "1.200x", "[1.100..1.500]"]
