import json

import pandas as pd
import pytest
from PIL import Image

from components.common.errors import ConfigError, DataError
from components.crop_patches.balance import AUGMENTATIONS, BalanceConfig, augment_patch, balance, check_empty

CLASSES = ("mel", "nev", "bcc")


def make_crops(counts: dict[tuple[str, str], int], start: int = 0) -> pd.DataFrame:
    """`counts[(split, label)]` rows each, with unique 16-hex patch ids (numbered from `start`)."""
    rows = []
    i = start
    for (split, label), n in counts.items():
        for _ in range(n):
            pid = f"{i:016x}"
            rows.append(
                {
                    "patch_id": pid,
                    "patch_path": f"{pid[-2:]}/{pid}.jpg",
                    "rel_path": f"img{i}.jpg",
                    "sha256": f"{i:064x}",
                    "box_index": 0,
                    "label": label,
                    "patient_id": f"P{i % 7}",
                    "split": split,
                }
            )
            i += 1
    return pd.DataFrame(rows)


def count(frame: pd.DataFrame, split: str, label: str) -> int:
    return int(((frame["split"] == split) & (frame["label"] == label)).sum())


def test_undersampling_hits_target_and_is_stable_when_crops_are_added() -> None:
    cfg = BalanceConfig(target_per_class=50)
    old = make_crops({("train", c): 100 for c in CLASSES})
    out, report = balance(old, CLASSES, cfg)
    assert all(count(out, "train", c) == 50 for c in CLASSES)
    assert (out["augment"] == "none").all() and (out["base_patch_id"] == out["patch_id"]).all()
    assert report["undersampled"]["train"] == {c: 50 for c in CLASSES}

    grown = pd.concat([old, make_crops({("train", "mel"): 10}, start=10_000)])
    out2, _ = balance(grown, CLASSES, cfg)
    kept = set(out.loc[out["label"] == "mel", "patch_id"])
    kept2 = set(out2.loc[out2["label"] == "mel", "patch_id"])
    assert len(kept2) == 50
    assert len(kept & kept2) >= 50 - 10  # only new crops can displace old ones
    assert set(out2["patch_id"]) - set(out["patch_id"]) <= set(grown["patch_id"].iloc[-10:])


def test_selection_ignores_input_order() -> None:
    crops = make_crops({("train", "mel"): 40, ("train", "nev"): 6, ("train", "bcc"): 15})
    cfg = BalanceConfig(target_per_class=15)
    a, _ = balance(crops, CLASSES, cfg)
    b, _ = balance(crops.sample(frac=1, random_state=3), CLASSES, cfg)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("n", "target", "augs"),
    [
        (10, 25, ("hflip", "vflip")),  # two full rounds would be 20 copies; 15 needed
        (3, 4, ("rot90",)),  # a partial first round
        (4, 20, AUGMENTATIONS[:4]),  # exactly n * (1 + len(augs))
    ],
)
def test_oversampling_reaches_target_with_unique_copies(n: int, target: int, augs: tuple[str, ...]) -> None:
    crops = make_crops({("train", "mel"): n, ("train", "nev"): target, ("train", "bcc"): target})
    out, report = balance(crops, CLASSES, BalanceConfig(target_per_class=target, augmentations=augs))
    mel = out[out["label"] == "mel"]
    assert len(mel) == target
    assert out["patch_id"].is_unique
    copies = mel[mel["augment"] != "none"]
    assert len(copies) == target - n
    assert not copies[["base_patch_id", "augment"]].duplicated().any()
    assert set(copies["augment"]) <= set(augs)
    # round-robin: no original gets a second copy before every original has a first one
    per_base = copies.groupby("base_patch_id").size()
    assert per_base.max() - per_base.reindex(crops.loc[crops["label"] == "mel", "patch_id"], fill_value=0).min() <= 1
    by_id = crops.set_index("patch_id")
    for row in copies.itertuples():
        assert row.patch_id == f"{row.base_patch_id}-{row.augment}"
        base_path = by_id.loc[row.base_patch_id, "patch_path"]
        assert row.patch_path == base_path[: -len(".jpg")] + f"-{row.augment}.jpg"
        assert row.patch_path.split("/")[0] == base_path.split("/")[0]
        assert row.sha256 == by_id.loc[row.base_patch_id, "sha256"]  # other columns carried over
    assert report["oversampled"]["train"] == {"mel": target - n}
    assert report["short"]["train"] == {}


def test_class_ends_short_when_augmentations_run_out() -> None:
    crops = make_crops({("train", "mel"): 2, ("train", "nev"): 10, ("train", "bcc"): 10})
    out, report = balance(crops, CLASSES, BalanceConfig(target_per_class=10, augmentations=("hflip", "vflip")))
    assert count(out, "train", "mel") == 6  # 2 originals × (1 + 2 augmentations)
    assert report["short"]["train"] == {"mel": 6}
    assert not out[["base_patch_id", "augment"]].duplicated().any()


def test_empty_class_fails_by_default_and_is_reported_otherwise() -> None:
    crops = make_crops({("train", "mel"): 5, ("train", "nev"): 5, ("val", "bcc"): 2})
    cfg = BalanceConfig(target_per_class=5)
    _, report = balance(crops, CLASSES, cfg)
    with pytest.raises(DataError, match=r"'bcc'.*split train.*fail_on_empty_class"):
        check_empty(report, cfg, "patches.parquet")

    lenient = BalanceConfig(target_per_class=5, fail_on_empty_class=False)
    out, report = balance(crops, CLASSES, lenient)
    assert report["empty"]["train"] == ["bcc"]
    assert report["after"]["train"]["bcc"] == 0
    assert any("bcc" in w and "train" in w for w in check_empty(report, lenient, "patches.parquet"))


@pytest.mark.parametrize(
    "cfg",
    [
        BalanceConfig(target_per_class=5),
        BalanceConfig(target_per_class=None),
        BalanceConfig(target_per_class=5, undersample=False, oversample=False),
    ],
)
def test_unbalanced_splits_pass_unchanged_and_report_matches_output(cfg: BalanceConfig) -> None:
    crops = make_crops(
        {
            ("train", "mel"): 9,
            ("train", "nev"): 2,
            ("train", "bcc"): 5,
            ("val", "mel"): 8,
            ("val", "nev"): 1,
            ("val", "bcc"): 3,
            ("test", "mel"): 7,
        }
    )
    out, report = balance(crops, CLASSES, cfg)
    balanced = cfg.splits if cfg.target_per_class is not None else ()
    untouched = out[~out["split"].isin(balanced)].drop(columns=["augment", "base_patch_id"])
    expected = crops[~crops["split"].isin(balanced)].sort_values(["split", "label", "patch_id"])
    pd.testing.assert_frame_equal(untouched.reset_index(drop=True), expected.reset_index(drop=True))
    for split in ("train", "val", "test"):
        for c in CLASSES:
            assert report["before"][split][c] == count(crops, split, c)
            assert report["after"][split][c] == count(out, split, c)
            dropped = report["undersampled"].get(split, {}).get(c, 0)
            added = report["oversampled"].get(split, {}).get(c, 0)
            assert report["after"][split][c] == report["before"][split][c] - dropped + added
    assert report["before"]["test"]["bcc"] == 0 and "bcc" in report["empty"]["test"]
    assert json.loads(json.dumps(report)) == report
    assert list(out.sort_values(["split", "label", "patch_id"]).index) == list(out.index)


def test_unknown_label_is_a_data_error() -> None:
    crops = make_crops({("train", "mel"): 2, ("train", "scc"): 1})
    with pytest.raises(DataError, match="scc"):
        balance(crops, CLASSES, BalanceConfig(target_per_class=2))


# 3 × 2 image, pixel value encodes (x, y): asymmetric under every flip and rotation.
def pixels(img: Image.Image) -> list[list[int]]:
    return [[img.getpixel((x, y)) for x in range(img.width)] for y in range(img.height)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hflip", [[3, 2, 1], [6, 5, 4]]),
        ("vflip", [[4, 5, 6], [1, 2, 3]]),
        ("rot90", [[3, 6], [2, 5], [1, 4]]),  # counter-clockwise, as PIL's ROTATE_90
        ("rot180", [[6, 5, 4], [3, 2, 1]]),
        ("rot270", [[4, 1], [5, 2], [6, 3]]),
        ("transpose", [[1, 4], [2, 5], [3, 6]]),
    ],
)
def test_augment_patch_pixels(name: str, expected: list[list[int]]) -> None:
    img = Image.new("L", (3, 2))
    img.putdata([1, 2, 3, 4, 5, 6])
    assert pixels(augment_patch(img, name)) == expected
    assert pixels(img) == [[1, 2, 3], [4, 5, 6]]  # input untouched


def test_augment_patch_unknown_name() -> None:
    with pytest.raises(ValueError, match="mirror"):
        augment_patch(Image.new("L", (2, 2)), "mirror")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_per_class": 0}, "target_per_class"),
        ({"augmentations": ("hflip", "shear")}, "augmentations"),
        ({"augmentations": ("hflip", "hflip")}, "augmentations"),
        ({"splits": ("train", "holdout")}, "splits"),
        ({"splits": ("train", "val")}, "splits"),  # copies never reach val/test
        ({"splits": ("test",)}, "splits"),
    ],
)
def test_bad_config_is_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"crop_patches\.balance\.{field}"):
        BalanceConfig(**kwargs)
