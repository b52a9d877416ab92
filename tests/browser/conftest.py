"""One real app (tiny MLflow registry with classifier + detector champions) and one headless
Chromium per test session; each test switches the viewport it needs and saves a screenshot under
the session's output folder (printed at the end of the run)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import harness

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from components.common.store import Store
    from tests.serve.fixtures import ServeSetup

SHOTS_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    reason = harness.missing_browser()
    if reason:
        pytest.skip(f"browser tests need Debian's chromium: {reason}")
    pytest.importorskip("selenium", reason="browser tests need selenium (pip install -e .[test])")
    driver = harness.start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ServeSetup:
    from tests.serve.fixtures import build_serving

    return build_serving(tmp_path_factory.mktemp("browser-serving"))


@pytest.fixture(scope="session")
def base_url(chromium: WebDriver, serving: ServeSetup) -> Iterator[str]:
    """The real app on a loopback port (started after the browser check, so no browser: no app)."""
    from components.common.scope import ScopeConfig
    from tests.serve.fixtures import serve_in_thread

    with serve_in_thread(serving.app(scope=ScopeConfig())) as url:  # the grey-film test needs it
        yield url


@pytest.fixture(scope="session")
def store(serving: ServeSetup) -> Iterator[Store]:
    from components.common.store import Store

    st = Store(serving.cfg.store_url)
    yield st
    st.close()


@pytest.fixture(scope="session")
def shots_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "browser-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SHOTS_KEY] = folder
    return folder


@pytest.fixture(autouse=True)
def no_script_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a browser test whose page threw: the API's 4xx answers are expected, exceptions are not."""
    yield
    if "chromium" not in request.fixturenames:
        return
    driver = request.getfixturevalue("chromium")
    errors = [e["message"] for e in driver.get_log("browser") if e.get("source") == "javascript"]
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def shot(chromium: WebDriver, shots_dir: Path, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`shot("label")` saves a full-page screenshot named after the test and prints its path."""

    def save(label: str) -> Path:
        name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
        path = harness.screenshot(chromium, shots_dir / f"{name}-{label}.png")
        print(f"screenshot: {path}")
        return path

    return save


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    folder = config.stash.get(SHOTS_KEY, None)
    if folder is not None and any(folder.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {folder}")
