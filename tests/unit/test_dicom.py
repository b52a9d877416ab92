"""DICOM → 8-bit RGB: rescale, windowing, MONOCHROME1 inversion, and no identifying tags out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.common.dicom import SAFE_TAGS, read_dicom
from components.common.errors import DataError
from tests.dicom_files import ramp, write_dicom


def test_min_max_without_window_and_only_safe_tags(tmp_path: Path) -> None:
    out = read_dicom(write_dicom(tmp_path / "a.dcm", ramp()))
    arr = np.asarray(out.image)
    assert out.image.mode == "RGB" and arr.shape == (8, 16, 3)
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255
    assert set(out.tags) <= set(SAFE_TAGS) and out.tags["BitsStored"] == 12
    assert "Doe" not in repr(out.tags) and "MRN" not in repr(out.tags)


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono2 = np.asarray(read_dicom(write_dicom(tmp_path / "m2.dcm", ramp())).image)
    mono1 = np.asarray(read_dicom(write_dicom(tmp_path / "m1.dcm", ramp(), "MONOCHROME1")).image)
    assert mono1[0, 0, 0] == 255 and mono1[0, -1, 0] == 0
    assert np.array_equal(mono1.astype(int), 255 - mono2.astype(int))


def test_rescale_then_window(tmp_path: Path) -> None:
    # stored 0..4000, slope 0.5 intercept -1000 → -1000..1000; window 0±100 → a hard edge mid-ramp
    path = write_dicom(
        tmp_path / "w.dcm",
        ramp(w=41),
        RescaleSlope="0.5",
        RescaleIntercept="-1000",
        WindowCenter="0",
        WindowWidth="200",
    )
    arr = np.asarray(read_dicom(path).image)[0, :, 0]
    values = np.linspace(0, 4000, 41) * 0.5 - 1000
    assert (arr[values <= -101] == 0).all() and (arr[values >= 100] == 255).all()
    assert 0 < arr[np.argmin(np.abs(values))] < 255


def test_garbage_is_image_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom at all")
    with pytest.raises(DataError) as err:
        read_dicom(bad)
    assert err.value.code == "IMAGE_CORRUPT"
