"""Screenshots of the clinician page for the README: docs/img/clinician-phone.png and
clinician-desktop.png, each showing a classified region's result.

Run from the repository root (module mode puts the root on the import path):

    .venv/bin/python -m scripts.screenshot                          # tiny throwaway registry
    .venv/bin/python -m scripts.screenshot --url http://127.0.0.1:8000 --token <a clinician's token>

The page is driven by the same harness as tests/browser (Debian chromium, headless): sign in, pick the photo,
drag the lesion box, classify, wait for the result. The default photo is the first labelled photo
under data/images (after `make demo`), the box its first labelImg box; without data a synthetic
photo is used.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.common.voc import read_voc
from tests.browser import harness

REPO = Path(__file__).resolve().parents[1]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running LesionOps app; default: serve a tiny test registry here")
    p.add_argument("--token", help="with --url: a clinician's token (`lesionops users add`); default: the test one")
    p.add_argument("--image", type=Path, help="photo to classify (default: first labelled photo in data/images)")
    p.add_argument("--box", help="x1,y1,x2,y2 in image pixels (default: the photo's first labelImg box)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    return p


def pick_photo(image: Path | None, box: str | None, work: Path) -> tuple[Path, list[float] | None]:
    """The photo and lesion box to show: given, else from data/images, else synthetic."""
    if image is None:
        labelled = sorted((REPO / "data" / "images").glob("*.xml"))
        pairs = [(x.with_suffix(".jpg"), x) for x in labelled if x.with_suffix(".jpg").is_file()]
        if pairs:
            image, xml = pairs[0]
            voc = read_voc(xml)
            first = voc.boxes[0]  # labelImg: 1-based inclusive → the API's 0-based exclusive
            return image, [first.xmin - 1, first.ymin - 1, first.xmax, first.ymax]
        from tests.serve.fixtures import image_bytes

        image = work / "synthetic.jpg"
        image.write_bytes(image_bytes(640, 480, seed=5))
    return image, [float(v) for v in box.split(",")] if box else None


@contextmanager
def app_url(url: str | None, work: Path) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    from tests.serve.fixtures import build_serving, serve_in_thread

    with serve_in_thread(build_serving(work / "serving").app()) as local:
        yield local


def shoot(
    driver: object,
    base: str,
    vp: harness.Viewport,
    photo: Path,
    box: list[float] | None,
    size: tuple[int, int],
    out: Path,
    token: str,
) -> Path:
    from selenium.webdriver.common.by import By

    harness.set_viewport(driver, vp)  # type: ignore[arg-type]
    harness.open_page(driver, f"{base}/")  # type: ignore[arg-type]
    harness.sign_in(driver, token)  # type: ignore[arg-type]
    driver.find_element(By.ID, "file").send_keys(str(photo))  # type: ignore[attr-defined]
    img = harness.visible(driver, "photo")  # type: ignore[arg-type]
    harness.image_loaded(driver, img)  # type: ignore[arg-type]
    if box:
        start, end = (box[0] / size[0], box[1] / size[1]), (box[2] / size[0], box[3] / size[1])
        harness.drag(driver, img, start, end, touch=vp.mobile)  # type: ignore[arg-type]
    driver.find_element(By.ID, "go").click()  # type: ignore[attr-defined]
    harness.visible(driver, "result")  # type: ignore[arg-type]
    # a phone shows one screen at a time: the result as the user sees it; the desktop page whole
    return harness.screenshot(driver, out / f"clinician-{vp.name}.png", full_page=not vp.mobile)  # type: ignore[arg-type]


def main(args: argparse.Namespace) -> None:
    from PIL import Image

    reason = harness.missing_browser()
    if reason:
        raise SystemExit(f"screenshots need Debian's chromium: {reason}")
    with tempfile.TemporaryDirectory(prefix="lesionops-shots-") as tmp:
        work = Path(tmp)
        photo, box = pick_photo(args.image, args.box, work)
        with Image.open(photo) as im:
            size = im.size
        from tests.serve.fixtures import CLINICIAN

        token = args.token or CLINICIAN
        driver = harness.start_chromium(work / "profile")
        try:
            with app_url(args.url, work) as base:
                for vp in harness.VIEWPORTS.values():
                    print(shoot(driver, base, vp, photo, box, size, args.out, token))
        finally:
            driver.quit()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
