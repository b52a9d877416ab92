"""Fixtures of the serving tests: one tiny registry per module and the real app on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.fixtures import TOKEN, ServeSetup, build_serving, serve_in_thread


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ServeSetup:
    """A registry with a classifier and a detector champion (built once per test module)."""
    return build_serving(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def live_server(serving: ServeSetup) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port; yields the base URL."""
    with serve_in_thread(serving.app()) as url:
        yield url


@pytest.fixture()
def client(live_server: str) -> Iterator[httpx.Client]:
    """Signed in as the reviewer (who may classify, report and review)."""
    with httpx.Client(base_url=live_server, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture()
def anon(live_server: str) -> Iterator[httpx.Client]:
    """No credentials at all."""
    with httpx.Client(base_url=live_server, timeout=60) as c:
        yield c


@pytest.fixture()
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def root(serving: ServeSetup) -> Path:
    return serving.root
