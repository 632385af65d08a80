"""Register the marker for the (small) Ray test."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a local Ray cluster (small; runs in CI)")
