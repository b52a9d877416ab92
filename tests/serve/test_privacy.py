"""Patient photos kept private: a phone photo's EXIF (GPS included), XMP and comments never reach the
disk, neither in the serving store nor in the feedback export, and the box still lands on the lesion;
retention deletes the photos of unreported predictions after `serve.retention_days` and nothing else."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from components.common.image_stats import FEATURES
from components.common.retention import apply_retention
from components.common.store import Feedback, Prediction, Store, StoredImage, utc_now
from components.common.voc import read_voc
from tests.serve.fixtures import ServeSetup, image_bytes

GPS_IFD, ORIENTATION = 0x8825, 0x0112
SECRETS = (b"PhoneMaker", b"SN-123456", b"<x:xmpmeta", b"patient Jane", b"GPS")


def phone_photo(fmt: str = "JPEG", orientation: int = 6) -> bytes:
    """A photo as a phone writes it: EXIF with camera, serial, orientation and a GPS position, XMP,
    and (JPEG) a comment."""
    with Image.open(io.BytesIO(image_bytes(160, 120, seed=9))) as img:
        exif = Image.Exif()
        exif[ORIENTATION], exif[0x010F], exif[0xA431] = orientation, "PhoneMaker", "SN-123456"
        gps = exif.get_ifd(GPS_IFD)
        gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 24.0), "E", (2.0, 21.0, 3.0)
        buf = io.BytesIO()
        extra = {"comment": b"patient Jane"} if fmt == "JPEG" else {}
        img.save(buf, format=fmt, exif=exif, xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">GPS</x:xmpmeta>', **extra)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as check:
        assert check.getexif().get_ifd(GPS_IFD), "the test photo must carry GPS"
    return data


def assert_no_metadata(folder: Path) -> int:
    """Every file under `folder`: no EXIF, no GPS, no XMP, none of the phone's strings. Returns the count."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert not any(s in data for s in SECRETS) and b"Exif\0\0" not in data, path
        if path.suffix in (".jpg", ".png", ".tif", ".webp"):
            with Image.open(path) as img:
                assert not img.getexif() and not img.getexif().get_ifd(GPS_IFD), path
                assert "xmp" not in img.info and "exif" not in img.info and "comment" not in img.info, path
    return len(files)


def test_gps_tagged_upload_leaves_no_metadata_on_disk(client: httpx.Client, serving: ServeSetup) -> None:
    box = [10, 12, 70, 60]  # stored frame; the phone says the photo is viewed turned (orientation 6)
    r = client.post(
        "/classify", files={"file": ("phone.jpg", phone_photo(), "image/jpeg")}, data={"box": ",".join(map(str, box))}
    )
    assert r.status_code == 200, r.text
    store = Store(serving.cfg.store_url)
    pred = store.get_prediction(r.json()["prediction_id"])
    stored = Path(serving.cfg.image_dir) / pred["image_path"]
    assert pred["orientation"] == 6 and hashlib.sha256(stored.read_bytes()).hexdigest() == pred["input_sha256"]
    png = client.post(
        "/feedback",
        files={"file": ("p.png", phone_photo("PNG", 1), "image/png")},
        data={"suggested_label": "psoriasis"},
    )
    assert png.status_code == 201, png.text
    fid = client.post("/feedback", data={"prediction_id": pred["prediction_id"], "suggested_label": "psoriasis"})
    decided = client.post(
        f"/review/items/{fid.json()['feedback_id']}", json={"action": "accept", "true_label": "psoriasis"}
    )
    assert decided.status_code == 200, decided.text

    assert assert_no_metadata(Path(serving.cfg.image_dir)) >= 2
    assert assert_no_metadata(Path(serving.cfg.feedback_dir)) >= 3  # image, XML, metadata.csv
    ann = read_voc(Path(serving.cfg.feedback_dir) / decided.json()["export"])
    assert ann.filename.endswith(".png") and (ann.width, ann.height) == (120, 160)  # exported upright
    got = ann.boxes[0]  # the stored-frame box turned with the photo: x' = h - y, y' = x
    assert (got.xmin, got.ymin, got.xmax, got.ymax) == (120 - box[3] + 1, box[0] + 1, 120 - box[1], box[2])


def test_a_report_on_a_deleted_photo_is_410(client: httpx.Client, serving: ServeSetup) -> None:
    pid = client.post("/classify", files={"file": ("x.jpg", image_bytes(seed=31), "image/jpeg")}).json()[
        "prediction_id"
    ]
    store = Store(serving.cfg.store_url)
    later = utc_now() + timedelta(days=40)  # every unreported upload of this module is now 40 days old
    done = apply_retention(store, Path(serving.cfg.image_dir), 30, now=later)
    assert done.tombstoned >= 1 and store.get_prediction(pid)["image_deleted_at"] is not None
    r = client.post("/feedback", data={"prediction_id": pid, "suggested_label": "psoriasis"})
    assert r.status_code == 410 and "retention_days" in r.json()["detail"]
    for row in store.list_feedback(status=None):  # reported photos all stayed
        assert (Path(serving.cfg.image_dir) / row["image_path"]).is_file()


# ---- retention on a store alone, every case --------------------------------------------------------
def _put(
    store: Store, image_dir: Path, name: str, age_days: float, *, report: bool = False, predict: bool = True
) -> StoredImage:
    """A stored file `name` written `age_days` ago, with a prediction that old and maybe a report."""
    sha = hashlib.sha256(name.encode()).hexdigest()
    image = StoredImage(sha, f"{sha[:2]}/{sha}.jpg", 8, 8)
    when = utc_now() - timedelta(days=age_days)
    path = image_dir / image.path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        os.utime(path, (when.timestamp(), when.timestamp()))
    if predict:
        store.add_prediction(
            Prediction(
                f"p-{name}-{age_days}",
                when,
                "classify",
                "m",
                "1",
                image,
                None,
                {"top": []},
                "psoriasis",
                0.9,
                dict.fromkeys(FEATURES, 1.0),
                np.zeros(4),
                "u1",
            )
        )
    if report:
        store.add_feedback(
            Feedback(
                f"f-{name}",
                when,
                f"p-{name}-{age_days}" if predict else None,
                image,
                "psoriasis",
                None,
                None,
                None,
                "u1",
            )
        )
    return image


def test_retention_deletes_what_it_should_and_nothing_else(tmp_path: Path) -> None:
    store, images = Store(f"sqlite:///{tmp_path / 'store.db'}"), tmp_path / "images"
    old = _put(store, images, "old-unreported", 40)
    reported = _put(store, images, "old-reported", 40, report=True)
    reused = _put(store, images, "old-but-uploaded-again", 40)
    _put(store, images, "old-but-uploaded-again", 1)  # same photo, recent prediction
    recent = _put(store, images, "recent", 2)
    own_upload = _put(store, images, "report-with-own-upload", 40, report=True, predict=False)
    orphan_old, orphan_new = images / "aa" / "orphan-old.jpg", images / "aa" / "orphan-new.jpg"
    for path, age in ((orphan_old, 40), (orphan_new, 1)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        stamp = (utc_now() - timedelta(days=age)).timestamp()
        os.utime(path, (stamp, stamp))

    done = apply_retention(store, images, 30)
    assert done.deleted == [old.path] and done.tombstoned == 1 and done.kept_reported == 1
    assert done.orphans == ["aa/orphan-old.jpg"]
    assert not (images / old.path).exists() and not orphan_old.exists()
    for kept in (reported, reused, recent, own_upload):
        assert (images / kept.path).is_file(), kept
    assert orphan_new.is_file()
    assert store.count_predictions() == 5  # rows stay, for the drift windows
    assert store.get_prediction("p-old-unreported-40")["image_deleted_at"] is not None
    assert store.get_prediction("p-old-reported-40")["image_deleted_at"] is None
    events = store.list_events(action="retention_delete")
    assert {e["subject"] for e in events} == {old.sha256, "orphan-old"} and events[0]["user_id"] == "system:retention"
    assert apply_retention(store, images, 30).summary()["deleted"] == 0  # idempotent


def test_retention_setting_is_checked() -> None:
    from components.common.errors import ConfigError
    from lesionops.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="retention_days"):
        ServeConfig(retention_days=0)
    with pytest.raises(ConfigError, match="upload_rate"):
        ServeConfig(upload_rate="lots")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_box_follows_the_pixels(orientation: int) -> None:
    """The exported box covers exactly the pixels the stored-frame box covered, after the turn."""
    from components.crop_patches.geometry import upright
    from lesionops.serve.privacy import upright_box

    mask = np.zeros((40, 60), np.uint8)
    mask[5:12, 20:35] = 255  # box [20, 5, 35, 12] in the stored frame
    turned = np.asarray(upright(Image.fromarray(mask), orientation))
    ys, xs = np.nonzero(turned)
    assert upright_box([20, 5, 35, 12], (60, 40), orientation) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
