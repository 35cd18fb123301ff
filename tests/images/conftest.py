"""Fixtures of the image tests: both images built once per session by the real engine."""

from __future__ import annotations

import pytest

from devstack.images import Images, build_images


@pytest.fixture(scope="session")
def images() -> Images:
    return build_images()
