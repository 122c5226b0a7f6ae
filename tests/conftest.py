from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.prometheus import prometheus_path

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "prometheus-2.42"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures/prometheus-2.42 (real captures). Missing means a broken checkout."""
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """The prometheus binary. End-to-end tests fail (never skip) without it."""
    path = prometheus_path()
    assert path, "prometheus is not installed: run ./scripts/test (it apt-get installs it)"
    return path
