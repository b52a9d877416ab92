"""Headless Chromium driving the real LesionOps app on loopback (started with
tests.serve.fixtures.serve_in_thread): shared by the browser tests and scripts/screenshot.py, so
the README's screenshots are taken by the same code the tests trust.

Debian's chromium + chromedriver are used through Selenium 4 (no browser download). One browser
serves many pages: a viewport is switched with the DevTools protocol's device-metrics override
(phone: 390×844 CSS px, mobile, touch events on) instead of starting a second browser.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
WAIT_S = 20.0  # generous for a loaded CI box; a passing step takes well under a second


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    scale: float
    mobile: bool


VIEWPORTS = {"phone": Viewport("phone", 390, 844, 2.0, True), "desktop": Viewport("desktop", 1280, 900, 1.0, False)}


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not exe.exists():
            return f"{exe} is missing (apt-get install chromium chromium-driver)"
    return None


def start_chromium(user_data_dir: Path) -> WebDriver:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in (*CHROME_ARGS, f"--user-data-dir={user_data_dir}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def set_viewport(driver: WebDriver, vp: Viewport) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": vp.width, "height": vp.height, "deviceScaleFactor": vp.scale, "mobile": vp.mobile},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": vp.mobile, "maxTouchPoints": 5})


def open_page(driver: WebDriver, url: str) -> None:
    """Load `url` with an empty localStorage (one browser profile serves every test: no stored token)."""
    driver.get(url)
    driver.execute_script("localStorage.clear();")
    driver.refresh()


def sign_in(driver: WebDriver, token: str) -> None:
    """Sign in on the page with a personal token and wait until it names the user."""
    from selenium.webdriver.common.by import By

    field = visible(driver, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    visible(driver, "signed-in")


def screenshot(driver: WebDriver, path: Path, full_page: bool = True) -> Path:
    """The whole page (or what the viewport shows now) as a PNG."""
    if full_page:
        size = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];"
        )
        args = {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        }
    else:
        args = {"format": "png"}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def wait_for(driver: WebDriver, condition: Any, what: str, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message=f"timed out: {what}")


def visible(driver: WebDriver, element_id: str) -> WebElement:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return wait_for(driver, ec.visibility_of_element_located((By.ID, element_id)), f"#{element_id} visible")


def image_loaded(driver: WebDriver, img: WebElement) -> None:
    wait_for(
        driver,
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img),
        "image decoded",
    )


def drag(driver: WebDriver, img: WebElement, start: tuple[float, float], end: tuple[float, float], touch: bool) -> None:
    """Drag from `start` to `end`, given as fractions of the shown image, with a finger or a mouse."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
    kind = interaction.POINTER_TOUCH if touch else interaction.POINTER_MOUSE
    actions = ActionBuilder(driver, mouse=PointerInput(kind, "finger" if touch else "mouse"), duration=50)
    w, h = img.size["width"], img.size["height"]

    def offset(frac: tuple[float, float]) -> tuple[int, int]:
        # WebDriver offsets are from the centre; keep 1 px inside so an edge point still hits the photo
        return (
            min(max(round((frac[0] - 0.5) * w), 1 - w // 2), w // 2 - 1),
            min(max(round((frac[1] - 0.5) * h), 1 - h // 2), h // 2 - 1),
        )

    pointer = actions.pointer_action
    pointer.move_to(img, *offset(start)).pointer_down()
    for step in (0.5, 1.0):
        mid = (start[0] + step * (end[0] - start[0]), start[1] + step * (end[1] - start[1]))
        pointer.move_to(img, *offset(mid))
    pointer.pointer_up()
    actions.perform()


def expected_box(start: tuple[float, float], end: tuple[float, float], size: tuple[int, int]) -> list[int]:
    """The box (image pixels) a drag between two fractions of the shown image must produce."""
    xs = sorted((start[0] * size[0], end[0] * size[0]))
    ys = sorted((start[1] * size[1], end[1] * size[1]))
    return [round(xs[0]), round(ys[0]), round(xs[1]), round(ys[1])]
