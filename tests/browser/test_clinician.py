"""The clinician's page in headless Chromium, at a phone viewport (touch) and a desktop viewport
(mouse), against the real app: classify a dragged region, detect, report a wrong result, and see
the API's own error messages."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser import harness
from tests.serve.fixtures import CLASSES, CLINICIAN, image_bytes

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from components.common.store import Store
    from tests.serve.fixtures import ServeSetup

Shot = Callable[[str], Path]

VIEWPORTS = [pytest.param(harness.VIEWPORTS[name], id=name) for name in ("phone", "desktop")]
WIDTH, HEIGHT = 160, 120
DRAG = ((0.25, 0.2), (0.8, 0.75))  # fractions of the shown photo


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "lesion.jpg"
    path.write_bytes(image_bytes(WIDTH, HEIGHT, seed=5))
    return path


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def open_clinician(driver: WebDriver, base_url: str, vp: harness.Viewport, token: str | None = CLINICIAN) -> None:
    """The clinician page at this viewport, signed in with `token` (None: stay signed out)."""
    harness.set_viewport(driver, vp)
    harness.open_page(driver, f"{base_url}/")
    if token:
        harness.sign_in(driver, token)


def choose(driver: WebDriver, path: Path, task: str = "classify") -> None:
    by_id(driver, "ask").find_element("css selector", f"input[name=task][value={task}]").click()
    by_id(driver, "file").send_keys(str(path))


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_drag_box_classify_and_report_wrong(
    chromium: WebDriver, base_url: str, store: Store, photo: Path, shot: Shot, vp: harness.Viewport
) -> None:
    open_clinician(chromium, base_url, vp, token=None)
    qr_shown = chromium.find_element("css selector", "aside.qr").is_displayed()
    assert qr_shown is (vp.name == "desktop"), "the QR code is for desktop screens only"
    by_id(chromium, "token").send_keys("not-the-token")
    by_id(chromium, "sign-in").click()
    status = harness.visible(chromium, "account-status")
    harness.wait_for(chromium, lambda d: "401" in status.text, "the refused token is explained")
    assert "access token was refused" in status.text and not by_id(chromium, "signed-in").is_displayed()
    harness.sign_in(chromium, CLINICIAN)
    assert "dr-clinician" in by_id(chromium, "who").text and "clinician" in by_id(chromium, "role").text
    assert chromium.execute_script("return localStorage.getItem('lesionops.token')") == CLINICIAN

    choose(chromium, photo)
    img = harness.visible(chromium, "photo")
    harness.image_loaded(chromium, img)
    harness.drag(chromium, img, *DRAG, touch=vp.mobile)
    want = harness.expected_box(*DRAG, (WIDTH, HEIGHT))
    assert close(shown_box(by_id(chromium, "box-out").text), want)

    by_id(chromium, "go").click()
    harness.visible(chromium, "result")
    bars = chromium.find_elements("css selector", "#top li")
    assert sorted(li.get_attribute("data-label") for li in bars) == sorted(CLASSES)  # 2 classes < top_k
    assert "version 1" in by_id(chromium, "model-version").text
    shot("result")

    assert close(prediction_box(store), want)  # the crop the app classified is the dragged one

    by_id(chromium, "wrong").find_element("css selector", "summary").click()
    from selenium.webdriver.support.ui import Select

    Select(by_id(chromium, "suggested")).select_by_value("other")
    by_id(chromium, "note").send_keys("border looks like eczema")
    by_id(chromium, "send-feedback").click()
    status = harness.visible(chromium, "feedback-status")
    harness.wait_for(chromium, lambda d: "received" in status.text, "the report is confirmed")
    feedback_id = status.text.split("report ", 1)[1].split(" ", 1)[0]
    row = store.get_feedback(feedback_id)
    assert row is not None and row["status"] == "pending" and row["reporter_id"] == CLINICIAN.split(".")[0]
    assert row["suggested_label"] == "other" and row["note"] == "border looks like eczema"
    shot("reported")
    by_id(chromium, "sign-out").click()
    harness.visible(chromium, "signin")
    assert chromium.execute_script("return localStorage.getItem('lesionops.token')") is None


def test_a_grey_film_gets_the_reason_and_no_diseases(
    chromium: WebDriver, base_url: str, tmp_path: Path, shot: Shot
) -> None:
    """serve_scope: a chest film sent to a skin model is refused on the page, with what to send instead."""
    from PIL import Image

    film = tmp_path / "film.jpg"
    Image.new("L", (WIDTH, HEIGHT), 128).convert("RGB").save(film)
    open_clinician(chromium, base_url, harness.VIEWPORTS["desktop"])
    choose(chromium, film)
    harness.image_loaded(chromium, harness.visible(chromium, "photo"))
    by_id(chromium, "go").click()
    notice = harness.visible(chromium, "out-of-scope")
    assert "black and white" in notice.text and "colour photo of the skin" in notice.text
    assert chromium.find_elements("css selector", "#top li") == []
    shot("out-of-scope")
    by_id(chromium, "sign-out").click()


def shown_box(text: str) -> list[float]:
    """The box the page says it will send ("x1, y1 → x2, y2 (w × h px)")."""
    return [float(v) for v in re.findall(r"\d+", text)[:4]]


def close(got: list[float], want: list[int], tol: float = 2.0) -> bool:
    """Within `tol` image pixels: pointer positions are rounded to CSS pixels on the way."""
    assert len(got) == 4, got
    assert all(abs(a - b) <= tol for a, b in zip(got, want, strict=True)), (got, want)
    return True


def prediction_box(store: Store) -> list[float]:
    """The box the app stored with the newest classification (what the crop was taken from), once
    its drift features are measured: the drift window leaves rows whose features are pending out."""
    deadline = time.monotonic() + 60
    while store.pending_features(1) and time.monotonic() < deadline:
        time.sleep(0.05)
    frame = store.recent_predictions(1, kind="classify")
    pred = store.get_prediction(frame.prediction_id.iloc[-1])
    assert pred is not None and pred["box"] is not None
    return pred["box"]


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_detect_shows_annotated_image(
    chromium: WebDriver, base_url: str, photo: Path, shot: Shot, vp: harness.Viewport
) -> None:
    open_clinician(chromium, base_url, vp)
    choose(chromium, photo, task="detect")
    assert by_id(chromium, "region").is_displayed() is False  # no box for detection
    assert by_id(chromium, "go").text == "Detect lesions"
    by_id(chromium, "go").click()
    harness.visible(chromium, "result")
    annotated = harness.visible(chromium, "annotated")
    harness.image_loaded(chromium, annotated)
    assert annotated.get_attribute("src").startswith("data:image/png;base64,")
    assert chromium.execute_script("return arguments[0].naturalWidth", annotated) == WIDTH
    assert by_id(chromium, "detections").find_elements("css selector", "li")
    assert by_id(chromium, "top").is_displayed() is False
    shot("detected")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("notes.txt", b"not a photo at all", id="text"),
        pytest.param("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, id="broken-png"),
    ],
)
def test_invalid_file_shows_the_api_message(
    chromium: WebDriver, base_url: str, shot: Shot, tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    open_clinician(chromium, base_url, harness.VIEWPORTS["desktop"])
    choose(chromium, path)
    harness.visible(chromium, "no-preview")
    by_id(chromium, "go").click()
    error = harness.visible(chromium, "error")
    mime = "text/plain" if name.endswith(".txt") else "image/png"
    answer = httpx.post(
        f"{base_url}/classify", files={"file": (name, content, mime)}, headers={"Authorization": f"Bearer {CLINICIAN}"}
    )
    assert answer.status_code in (400, 415)
    assert f"HTTP {answer.status_code}" in error.text
    assert answer.json()["detail"] in error.text
    assert by_id(chromium, "result").is_displayed() is False
    shot("error")


def test_keyboard_sets_and_clears_the_box(chromium: WebDriver, base_url: str, photo: Path, shot: Shot) -> None:
    from selenium.webdriver.common.keys import Keys

    open_clinician(chromium, base_url, harness.VIEWPORTS["desktop"])
    choose(chromium, photo)
    harness.image_loaded(chromium, harness.visible(chromium, "photo"))
    stage = by_id(chromium, "stage")
    stage.send_keys(Keys.ARROW_RIGHT)  # first arrow: a centred half-size box
    assert by_id(chromium, "box-out").text.startswith("40, 30 → 120, 90")
    stage.send_keys(Keys.ARROW_RIGHT)  # then a step of 2 % of the longer side
    assert by_id(chromium, "box-out").text.startswith("43, 30 → 123, 90")
    stage.send_keys(Keys.SHIFT, Keys.ARROW_DOWN)
    assert by_id(chromium, "box-out").text.startswith("43, 30 → 123, 93")
    assert chromium.switch_to.active_element == stage
    shot("keyboard-box")
    by_id(chromium, "whole").send_keys(Keys.ENTER)
    assert by_id(chromium, "box-out").text == "whole image"


def test_too_large_photo_shows_the_api_message(
    chromium: WebDriver, base_url: str, serving: ServeSetup, shot: Shot, tmp_path: Path
) -> None:
    limit = serving.cfg.max_upload_bytes
    path = tmp_path / "huge.jpg"
    path.write_bytes(image_bytes(WIDTH, HEIGHT) + b"\0" * (limit + 1))  # decodable, but over the limit
    open_clinician(chromium, base_url, harness.VIEWPORTS["phone"])
    choose(chromium, path)
    by_id(chromium, "go").click()
    error = harness.visible(chromium, "error")
    assert "too large" in error.text and "HTTP 413" in error.text
    detail = httpx.post(
        f"{base_url}/classify",
        files={"file": ("huge.jpg", path.read_bytes(), "image/jpeg")},
        headers={"Authorization": f"Bearer {CLINICIAN}"},
    )
    assert detail.status_code == 413 and detail.json()["detail"] in error.text
    shot("too-large")


def test_no_model_then_server_gone(chromium: WebDriver, tmp_path: Path, shot: Shot, photo: Path) -> None:
    """503 (no champion yet) shows the API's reason; a server that went away is a network message."""
    from tests.serve.fixtures import build_serving, serve_in_thread

    empty = build_serving(tmp_path / "empty", classifier=False, detector=False)
    with serve_in_thread(empty.app()) as url:
        open_clinician(chromium, url, harness.VIEWPORTS["desktop"])
        service = harness.visible(chromium, "service")  # said before any upload, from GET /health
        assert "Classification is not available" in service.text and "classifier" in service.text
        choose(chromium, photo)
        by_id(chromium, "go").click()
        error = harness.visible(chromium, "error")
        harness.wait_for(chromium, lambda d: "HTTP 503" in error.text, "the 503 is explained")
        detail = httpx.post(
            f"{url}/classify",
            files={"file": ("p.jpg", photo.read_bytes(), "image/jpeg")},
            headers={"Authorization": f"Bearer {CLINICIAN}"},
        )
        assert detail.status_code == 503 and detail.json()["detail"] in error.text
        assert "not available right now" in error.text
        shot("no-model")
    by_id(chromium, "go").click()
    harness.wait_for(chromium, lambda d: "Cannot reach" in by_id(d, "error").text, "the network failure is explained")
    assert by_id(chromium, "result").is_displayed() is False
    shot("server-gone")
