"""Fixtures for the TUI tests: apps with a paused lab clock, async tests without plugins.

Lab time only moves through keys (t / T) that run lab.run in the engine worker; tests wait for
that worker (`settle`) instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from engine import Lab
from tests.conftest import SAMPLES


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop (no pytest-asyncio needed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**args))
        return True
    return None


@pytest.fixture
def sample_lab(tmp_path):
    lab = Lab.create(tmp_path / "sample-lab", SAMPLES / "hyperv-to-azure.toml")
    yield lab
    lab.close()
