"""Windows, edge policies, fitting and orientation of patches, on generated pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from components.crop_patches.geometry import Window, box_window, extract, fit, reduction, upright


def _ramp(width: int = 100, height: int = 80) -> Image.Image:
    """Each pixel encodes its own (x, y): red = x, green = y, so a crop tells where it came from."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x, y, np.full_like(x, 7)], axis=-1).astype(np.uint8))


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((11, 11, 30, 20), (8, 3, 32, 27)),  # square around the box with 10 % margin
        ((1, 1, 20, 20), (0, 0, 24, 24)),  # at the top-left corner: shifted inside
        ((90, 70, 100, 80), (87, 67, 100, 80)),  # at the bottom-right corner: shifted inside
        ((1, 1, 100, 80), (0, 0, 100, 80)),  # bigger than the image: the whole image
    ],
)
def test_shift_window_stays_inside(box: tuple, expected: tuple) -> None:
    w = box_window(box, 100, 80, 0.1, "square", "shift")
    assert (w.left, w.top, w.right, w.bottom) == expected


@pytest.mark.parametrize("edge", ["reflect", "constant"])
def test_padding_windows_stay_centred_on_the_box(edge: str) -> None:
    w = box_window((1, 1, 20, 20), 100, 80, 0.1, "square", edge)
    assert (w.left, w.top, w.right, w.bottom) == (-2, -2, 22, 22)


def test_keep_aspect_window_follows_the_box() -> None:
    w = box_window((11, 11, 50, 20), 100, 80, 0.0, "keep_aspect", "shift")
    assert (w.width, w.height) == (40, 10)


@pytest.mark.parametrize("corner", ["top_left", "bottom_right"])
@pytest.mark.parametrize("edge", ["shift", "reflect", "constant"])
def test_boxes_at_the_image_edge(edge: str, corner: str) -> None:
    img = _ramp()
    box = (1, 1, 10, 10) if corner == "top_left" else (91, 71, 100, 80)
    window = box_window(box, 100, 80, 0.5, "square", edge)
    arr = np.asarray(extract(img, window, edge, pad_value=200))
    assert arr.shape[:2] == (window.height, window.width) == (20, 20)
    if edge == "shift":
        assert window.inside(100, 80)
        assert (arr[..., 2] == 7).all()  # only real pixels
    elif edge == "constant":
        assert (arr[..., 2] == 200).any() and (arr[..., 2] == 7).any()
        padded = arr[..., 2] == 200
        assert (arr[padded] == 200).all()
    else:  # reflect: every pixel is a real one, mirrored at the border without repeating it
        assert (arr[..., 2] == 7).all()
        if corner == "top_left":
            assert arr[5, 0, 0] == 5 and arr[5, 5, 0] == 0 and arr[5, 6, 0] == 1
        else:
            assert arr[0, 14, 0] == 99 and arr[0, 15, 0] == 98


def test_reflect_handles_overhang_larger_than_the_image() -> None:
    img = _ramp(4, 3)
    arr = np.asarray(extract(img, Window(-10, -10, 14, 13), "reflect"))
    assert arr.shape[:2] == (23, 24)
    assert set(arr[..., 0].ravel()) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("policy", "size"),
    [("letterbox", (40, 10)), ("center_crop", (40, 10)), ("letterbox", (10, 40)), ("letterbox", (30, 30))],
)
def test_fit_returns_a_square_without_distortion(policy: str, size: tuple[int, int]) -> None:
    patch = Image.new("RGB", size, (255, 0, 0))
    out = fit(patch, 16, policy, pad_value=0)
    assert out.size == (16, 16)
    arr = np.asarray(out)
    if policy == "letterbox" and size[0] != size[1]:
        assert (arr[..., 0] == 0).any() and (arr[..., 0] == 255).any()  # bars + content
    else:
        assert (arr[..., 0] > 250).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_matches_pillow_exif_transpose(orientation: int) -> None:
    from PIL import ImageOps

    img = _ramp(6, 4)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = ImageOps.exif_transpose(img)
    assert np.array_equal(np.asarray(upright(_ramp(6, 4), orientation)), np.asarray(expected))


@pytest.mark.parametrize(
    ("sides", "expected"), [([64], 1), ([127], 1), ([128], 2), ([600, 300], 4), ([5000], 8), ([], 1), ([600, 40], 1)]
)
def test_reduction_never_starves_the_smallest_window(sides: list[float], expected: int) -> None:
    assert reduction(sides, 64) == expected


def test_scaled_window_is_never_empty() -> None:
    w = Window(10, 10, 11, 11).scaled(0.125, 0.125)
    assert w.width >= 1 and w.height >= 1
