from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml so the soak suite carries its own marker.
    config.addinivalue_line(
        "markers", "soak: the 60-second fault soak test (deselect with -m 'not soak')"
    )
