"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.emulator import Emulator

# Emulator ----------------------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator with no data, on a free loopback port."""
    with Emulator(seed="empty") as running:
        yield running


@pytest.fixture
def demo_emulator() -> Iterator[Emulator]:
    """A running emulator with the demo seed."""
    with Emulator(seed="demo") as running:
        yield running


# Push (owned by the push module's tests) -----------------------------------------------------------


@pytest.fixture
def push_client(emulator: Emulator) -> Iterator[BraintrustClient]:  # noqa: F821
    """A client of `emulator` whose retries back off for milliseconds, not seconds."""
    from connector.api.client import BraintrustClient
    from connector.config import ApiSettings

    settings = ApiSettings(api_url=emulator.url, api_key=emulator.api_key, backoff_initial_s=0.01)
    with BraintrustClient(settings) as client:
        yield client
