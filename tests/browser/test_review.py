"""The expert review page in headless Chromium against the real app: a pending report appears with
its photo (fetched with the token), the expert fixes the box, picks the true label and accepts; the
report leaves the queue and a labelImg Pascal VOC file lands in the feedback dataset. A rejected
report leaves the queue without writing anything."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser import harness
from tests.serve.fixtures import CLASSES, CLINICIAN, REVIEWER, image_bytes

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from components.common.store import Store
    from tests.serve.fixtures import ServeSetup

WIDTH, HEIGHT = 200, 150
DRAG = ((0.1, 0.15), (0.6, 0.7))


def report(base_url: str, seed: int, label: str, note: str) -> str:
    """A classification and a "this is wrong" report on it, through the API like the clinician page."""
    photo = image_bytes(WIDTH, HEIGHT, seed=seed)
    auth = {"Authorization": f"Bearer {CLINICIAN}"}
    pred = httpx.post(f"{base_url}/classify", files={"file": (f"p{seed}.jpg", photo, "image/jpeg")}, headers=auth)
    assert pred.status_code == 200, pred.text
    fb = httpx.post(
        f"{base_url}/feedback",
        headers=auth,
        data={"prediction_id": pred.json()["prediction_id"], "suggested_label": label, "note": note},
    )
    assert fb.status_code == 201, fb.text
    return fb.json()["feedback_id"]


def item(driver: WebDriver, feedback_id: str) -> WebElement:
    return driver.find_element("css selector", f"li.item[data-feedback-id='{feedback_id}']")


def gone(driver: WebDriver, feedback_id: str) -> bool:
    return not driver.find_elements("css selector", f"li.item[data-feedback-id='{feedback_id}']")


@pytest.mark.parametrize("vp", [pytest.param(harness.VIEWPORTS[name], id=name) for name in ("phone", "desktop")])
def test_accept_and_reject_flow(
    chromium: WebDriver,
    base_url: str,
    serving: ServeSetup,
    store: Store,
    shot: Callable[[str], Path],
    vp: harness.Viewport,
) -> None:
    from selenium.webdriver.support.ui import Select

    seed = 11 if vp.mobile else 21  # distinct photos per run
    to_accept = report(base_url, seed=seed, label="psoriasis", note="scaly plaque, not lichen")
    to_reject = report(base_url, seed=seed + 1, label="other", note="blurred photo")
    harness.set_viewport(chromium, vp)
    harness.open_page(chromium, f"{base_url}/review")
    harness.sign_in(chromium, REVIEWER)  # the queue loads on sign-in
    assert "dr-test" in chromium.find_element("id", "who").text

    harness.wait_for(chromium, lambda d: not gone(d, to_accept) and not gone(d, to_reject), "both reports queued")
    card = item(chromium, to_accept)
    assert "scaly plaque, not lichen" in card.text and "psoriasis" in card.text
    img = card.find_element("css selector", ".stage img")
    harness.image_loaded(chromium, img)  # fetched with the Authorization header, shown as a blob URL
    assert img.get_attribute("src").startswith("blob:")
    assert chromium.execute_script("return arguments[0].naturalWidth", img) == WIDTH
    select = Select(card.find_element("css selector", "select.true-label"))
    assert [o.get_attribute("value") for o in select.options][1:] == list(CLASSES)  # from the queue answer
    assert select.first_selected_option.get_attribute("value") == "psoriasis"  # preset from the report

    harness.drag(chromium, img, *DRAG, touch=vp.mobile)
    select.select_by_value("lichen_planus")
    shot("before-accept")
    card.find_element("css selector", "button[value=accept]").click()
    harness.wait_for(chromium, lambda d: gone(d, to_accept), "the accepted report leaves the queue")
    status = harness.visible(chromium, "status")
    assert f"Report {to_accept} accepted" in status.text

    row = store.get_feedback(to_accept)
    reviewer_id = REVIEWER.split(".")[0]
    assert row["status"] == "accepted" and row["true_label"] == "lichen_planus" and row["reviewer"] == reviewer_id
    xml = _voc(serving, row["export_path"])
    assert row["export_path"] in status.text
    obj = xml.find("object")
    assert obj.findtext("name") == "lichen_planus" and obj.findtext("review/reviewer") == reviewer_id
    xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
    got = [xmin - 1, ymin - 1, xmax, ymax]  # labelImg's 1-based inclusive corners → the page's 0-based
    want = harness.expected_box(*DRAG, (WIDTH, HEIGHT))
    assert all(abs(a - b) <= 2 for a, b in zip(got, want, strict=True)), (got, want)

    item(chromium, to_reject).find_element("css selector", "button[value=reject]").click()
    harness.wait_for(chromium, lambda d: gone(d, to_reject), "the rejected report leaves the queue")
    assert f"Report {to_reject} rejected" in harness.visible(chromium, "status").text
    rejected = store.get_feedback(to_reject)
    assert rejected["status"] == "rejected" and rejected["export_path"] is None
    shot("after-review")


def _voc(serving: ServeSetup, rel: str) -> ET.Element:
    """The exported labelImg XML (path relative to serve.feedback_dir), checking its image exists."""
    root = Path(serving.cfg.feedback_dir)
    xml_path = root / rel
    assert xml_path.is_file(), f"no VOC file at {xml_path}"
    doc = ET.parse(xml_path).getroot()
    image = root / "images" / doc.findtext("filename")
    assert image.is_file(), f"the VOC file names {image}, which was not written"
    return doc
