"""bench/run.py: the command line (defaults, --quick, --variant)."""

from __future__ import annotations

import pytest

from bench.run import parse_args, parse_variants


def test_defaults() -> None:
    args = parse_args([])
    assert (args.reps, args.duration, args.warmup) == (3, 4.0, 1.0)
    assert args.concurrency == "1,4,16,64"
    assert args.servers == "ours,workers2,mlserver,kserve,floor,echo"


def test_quick_only_changes_what_was_not_given() -> None:
    args = parse_args(["--quick", "--reps", "2"])
    assert (args.reps, args.duration, args.warmup, args.concurrency) == (2, 2.0, 0.5, "1,16")


def test_variants_are_named_environment_overrides() -> None:
    args = parse_args(["--variant", "nobatch", "MODELOPS_BATCH_MAX_ROWS=0", "--variant", "plain"])
    assert parse_variants(args.variant) == {
        "nobatch": {"MODELOPS_BATCH_MAX_ROWS": "0"},
        "plain": {},
    }
    assert parse_variants(None) == {}


def test_a_variant_assignment_without_equals_is_refused() -> None:
    with pytest.raises(SystemExit, match="expected ENV=VALUE"):
        parse_variants([["broken", "MODELOPS_BATCH_MAX_ROWS"]])
