"""find_tool and a build that `make tools` left running (MODELOPS_TOOLS_DETACH=1): the build
holds ENTRY.lock while it makes ENTRY, and .cache/bin links into ENTRY before it exists."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest

from devstack.paths import DevstackError, await_build


def dangling_link(tmp_path: Path) -> tuple[Path, Path]:
    """A .cache/bin link to ENTRY/keda, ENTRY not made yet; (link, ENTRY)."""
    entry = tmp_path / "cache" / "keda" / "v9.9.9"
    link = tmp_path / "bin" / "keda"
    link.parent.mkdir()
    link.symlink_to(entry / "keda")
    entry.parent.mkdir(parents=True)  # where start_build puts ENTRY.lock
    return link, entry


def publish(entry: Path) -> None:
    entry.mkdir()
    (entry / "keda").write_text("#!/bin/sh\n")
    (entry / "keda").chmod(0o755)


def test_waits_for_the_build_that_holds_the_lock_then_finds_the_tool(tmp_path, capsys):
    link, entry = dangling_link(tmp_path)
    building = (entry.parent / "v9.9.9.lock").open("w")  # the build's own open of the lock
    fcntl.flock(building, fcntl.LOCK_EX)
    ended = threading.Event()

    def build() -> None:
        time.sleep(0.3)
        publish(entry)
        ended.set()
        building.close()  # the build's process ends: its lock goes with it

    threading.Thread(target=build).start()
    assert await_build(link) == str(link)
    assert ended.is_set(), "await_build returned before the build ended"
    assert f"waiting for the keda build (log: {entry}.log)" in capsys.readouterr().err


def test_a_build_that_ended_without_the_tool_names_its_log(tmp_path):
    link, entry = dangling_link(tmp_path)
    (entry.parent / "v9.9.9.lock").touch()  # left by a build that failed
    with pytest.raises(DevstackError, match=f"keda build of `make tools` failed: see {entry}.log"):
        await_build(link)


def test_no_build_underway_is_no_tool(tmp_path):
    link, _ = dangling_link(tmp_path)
    assert await_build(link) is None  # find_tool then says: run `make tools`


def test_a_tool_that_is_there_or_no_link_is_none_of_its_business(tmp_path):
    link, entry = dangling_link(tmp_path)
    publish(entry)
    assert await_build(link) is None
    assert await_build(tmp_path / "bin" / "absent") is None
