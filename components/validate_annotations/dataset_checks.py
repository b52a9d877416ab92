"""Checks that need the whole dataset at once: duplicates, patients and splits, class balance.

Per-file checks cannot see that two uploads are the same photo or that a patient sits in both the
train and the test folder; these functions take every image row and return findings charged to
one file of a pair (the later by path, or for byte copies the one not kept), so the verdict does not
depend on listing order. Look-alike pairs also feed the split groups (components/common/split_groups).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from components.common.task import TaskConfig
from components.validate_annotations.checks import ERROR, INFO, WARNING, Finding
from components.validate_annotations.config import ValidateConfig

Row = dict[str, Any]


def dataset_root(images: list[Row]) -> str:
    """The dataset folder as a URI (dataset-wide findings name it), from any image's source_uri."""
    for img in images:
        uri, rel = str(img.get("source_uri") or ""), str(img["rel_path"])
        if uri.endswith(rel):
            return uri[: len(uri) - len(rel)].rstrip("/") or "."
    return "."


def _finding(code: str, severity: str, img: Row, message: str) -> Finding:
    return Finding(code, severity, img["rel_path"], message, input_file=img["rel_path"])


Box = tuple[str, float, float, float, float]  # (label, xmin, ymin, xmax, ymax) as annotated


def duplicate_images(
    images: list[Row], broken: frozenset[str] | set[str] = frozenset(), annotations: dict[str, list[Box]] | None = None
) -> list[Finding]:
    """Same bytes twice: one copy is kept and every other is quarantined, naming it. The kept copy is
    the first by path with no image-level error of its own (`broken`), so a good copy is never lost
    because its "original" is broken; the message says whether the two annotations agree, so a
    reviewer can choose which one to keep."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for img in sorted(images, key=lambda r: r["rel_path"]):
        if img.get("sha256") and not img.get("image_error"):
            groups[str(img["sha256"])].append(img)
    out: list[Finding] = []
    for sha, members in groups.items():
        if len(members) < 2:
            continue
        keep = next((m for m in members if m["rel_path"] not in broken), members[0])
        kept = "which is kept" if keep["rel_path"] not in broken else "itself quarantined (see its findings)"
        for m in members:
            if m is not keep:
                agree = (
                    ""
                    if annotations is None
                    else "; " + _agreement(annotations.get(m["rel_path"], []), annotations.get(keep["rel_path"], []))
                )
                out.append(
                    _finding(
                        "IMAGE_DUPLICATE",
                        ERROR,
                        m,
                        f"same bytes as {keep['rel_path']} (sha256 {sha[:12]}…), {kept}{agree}",
                    )
                )
    return out


def _agreement(mine: list[Box], theirs: list[Box]) -> str:
    """How two annotations of the same picture compare: identical, same labels, or different."""
    if sorted(mine) == sorted(theirs):
        return f"annotations identical ({len(mine)} boxes)"
    a, b = Counter(x[0] for x in mine), Counter(x[0] for x in theirs)
    if a == b:
        return f"same labels ({_labels(a)}), boxes differ"
    return (
        f"annotations differ: this copy has {len(mine)} boxes ({_labels(a)}), the kept one {len(theirs)} "
        f"({_labels(b)}); check which is right"
    )


def _labels(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _phashes(images: list[Row]) -> tuple[list[Row], np.ndarray]:
    rows, values = [], []
    for img in sorted(images, key=lambda r: r["rel_path"]):
        raw = img.get("phash")
        if raw and not img.get("image_error"):
            rows.append(img)
            values.append(int(str(raw), 16))
    return rows, np.array(values, dtype=np.uint64)


def near_duplicate_pairs(images: list[Row], cfg: ValidateConfig) -> list[tuple[Row, Row, int]]:
    """Every pair (earlier, later by path, Hamming distance) of different files whose perceptual
    hashes are within the threshold: all of them, not only each image's closest, because split
    groups are built from the pairs and one missed pair is a leak."""
    rows, hashes = _phashes(images)
    out: list[tuple[Row, Row, int]] = []
    for j in range(1, len(rows)):
        dist = np.bitwise_count(hashes[:j] ^ hashes[j])
        for i in np.flatnonzero(dist <= cfg.near_duplicate_phash_distance):
            if rows[int(i)].get("sha256") != rows[j].get("sha256"):
                out.append((rows[int(i)], rows[j], int(dist[i])))
    return out


def near_duplicate_images(
    images: list[Row], cfg: ValidateConfig, pairs: list[tuple[Row, Row, int]] | None = None
) -> list[Finding]:
    """Re-encoded or resized copies (perceptual hash within the Hamming threshold): both kept (and put
    in one split group), the later reported once, naming its closest earlier look-alike, because a
    re-shot of the same lesion is legitimate but worth a look."""
    if pairs is None:
        pairs = near_duplicate_pairs(images, cfg)
    by_later: dict[str, list[tuple[Row, Row, int]]] = defaultdict(list)
    for pair in pairs:
        by_later[pair[1]["rel_path"]].append(pair)
    out: list[Finding] = []
    for rel in sorted(by_later):
        matches = sorted(by_later[rel], key=lambda p: p[2])  # stable: ties keep the earlier path
        first, later, dist = matches[0]
        more = f" and {len(matches) - 1} other image(s)" if len(matches) > 1 else ""
        out.append(
            _finding(
                "IMAGE_NEAR_DUPLICATE",
                WARNING,
                later,
                f"looks like {first['rel_path']}{more} (perceptual-hash distance {dist} "
                f"<= {cfg.near_duplicate_phash_distance}); both kept, in one split group",
            )
        )
    return out


def _unknown_patient(img: Row) -> bool:
    source = img.get("patient_source")
    if source is not None:
        return source == "unknown"
    pid = str(img.get("patient_id") or "")
    return not pid or pid.startswith("unknown:")  # older ingest: its placeholder for a missing id


def patient_checks(images: list[Row]) -> list[Finding]:
    """PATIENT_UNKNOWN per image; PATIENT_LEAK when a patient or one image's bytes sit in two
    declared splits (crop_patches re-splits by patient, so this warns about the folders, not ours)."""
    out = [
        _finding(
            "PATIENT_UNKNOWN",
            WARNING,
            img,
            "no patient id (metadata.csv or pattern); the image is its own patient group, so "
            "a patient's other photos may land in another split",
        )
        for img in images
        if _unknown_patient(img)
    ]
    split_rows = [r for r in images if r.get("declared_split") and not r.get("image_error")]
    known = [r for r in split_rows if not _unknown_patient(r)]
    out += _leaks(known, "patient_id", "patient")
    out += _leaks(split_rows, "sha256", "the same image")
    return out


def _leaks(rows: list[Row], key: str, what: str) -> list[Finding]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["rel_path"]):
        groups[str(r[key])].append(r)
    out: list[Finding] = []
    for value, members in groups.items():
        splits = Counter(str(m["declared_split"]) for m in members)
        if len(splits) < 2:
            continue
        main = splits.most_common(1)[0][0]
        where = ", ".join(f"{s} ({n})" for s, n in sorted(splits.items()))
        name = f"patient {value}" if key == "patient_id" else f"{what} (sha256 {value[:12]}…)"
        out += [
            _finding("PATIENT_LEAK", WARNING, m, f"{name} is in several declared splits: {where}")
            for m in members
            if m["declared_split"] != main
        ]
    return out


def filename_checks(images: list[Row]) -> list[Finding]:
    """labelImg's <filename> vs the image it sits beside: same stem is resolved (warning); naming
    another image, or a stem several images share, is ambiguous (error)."""
    by_folder: dict[str, Counter[str]] = defaultdict(Counter)
    names = {r["rel_path"] for r in images}
    for r in images:
        p = PurePosixPath(r["rel_path"])
        by_folder[str(p.parent)][p.stem] += 1
    out: list[Finding] = []
    for img in images:
        declared = str(img.get("xml_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
        if not declared or img.get("annotation_error") or img.get("annotation_format") not in (None, "voc"):
            continue
        finding = _filename_finding(img, declared, by_folder, names)
        if finding is not None:
            out.append(finding)
    return out


def _filename_finding(img: Row, declared: str, by_folder: dict[str, Counter[str]], names: set[str]) -> Finding | None:
    p = PurePosixPath(img["rel_path"])
    if declared == p.name:
        return None
    file = img.get("annotation_path") or img["rel_path"]
    other = str(p.parent / declared) if str(p.parent) != "." else declared
    if other in names:
        return Finding(
            "FILENAME_MISMATCH",
            ERROR,
            file,
            f"<filename> is {declared!r}, another image in the dataset; the boxes may be its",
            input_file=img["rel_path"],
        )
    if PurePosixPath(declared).stem == p.stem and by_folder[str(p.parent)][p.stem] == 1:
        return Finding(
            "FILENAME_MISMATCH",
            WARNING,
            file,
            f"<filename> is {declared!r}; resolved by stem to {p.name}",
            input_file=img["rel_path"],
        )
    return Finding(
        "FILENAME_MISMATCH",
        ERROR,
        file,
        f"<filename> is {declared!r}, which cannot be matched to {p.name} unambiguously",
        input_file=img["rel_path"],
    )


def classes_txt_checks(images: list[Row]) -> list[Finding]:
    """YOLO folders whose classes.txt disagree: the same class id means different diseases."""
    lists: dict[str, str] = {}
    for img in images:
        if img.get("classes_txt_path") and img.get("classes_txt") is not None:
            lists.setdefault(str(img["classes_txt_path"]), str(img["classes_txt"]))
    if len(set(lists.values())) < 2:
        return []
    common = Counter(lists.values()).most_common(1)[0][0]
    reference = next(p for p, v in sorted(lists.items()) if v == common)
    return [
        Finding(
            "CLASSES_TXT_CONFLICT",
            WARNING,
            path,
            f"classes [{value}] differ from [{common}] in {reference}; each folder's ids were "
            "read with its own classes.txt",
        )
        for path, value in sorted(lists.items())
        if value != common
    ]


def orphan_annotations(rows: list[Row]) -> list[Finding]:
    """Annotation files with no image: quarantined so that every input file has a verdict."""
    return [
        Finding(
            "IMAGE_MISSING",
            ERROR,
            r["rel_path"],
            f"{r.get('annotation_format') or 'annotation'} file has no image with the same name",
            input_file=r["rel_path"],
        )
        for r in rows
    ]


def box_size_outliers(boxes: list[Row], images: dict[str, Row], cfg: ValidateConfig) -> list[Finding]:
    """Per class, boxes whose log area share is a robust (median/MAD) outlier; already-flagged
    mis-drags are excluded by the caller. Classes with too few boxes are not judged."""
    by_class: dict[str, list[Row]] = defaultdict(list)
    for b in boxes:
        by_class[b["label"]].append(b)
    out: list[Finding] = []
    for members in by_class.values():
        if len(members) < cfg.box_size_outlier_min_boxes:
            continue
        v = np.array([_log_share(b, images[b["rel_path"]]) for b in members])
        med = float(np.median(v))
        mad = float(np.median(np.abs(v - med)))
        if mad <= 0:
            continue
        for b, z in zip(members, 0.6745 * (v - med) / mad, strict=True):
            if abs(z) > cfg.box_size_outlier_z:
                img = images[b["rel_path"]]
                out.append(
                    Finding(
                        "BOX_SIZE_OUTLIER",
                        WARNING,
                        img.get("annotation_path") or img["rel_path"],
                        f"box area is {'far above' if z > 0 else 'far below'} its class "
                        f"{b['label']} (robust z {z:.1f}, limit {cfg.box_size_outlier_z:g})",
                        int(b["box_index"]),
                        img["rel_path"],
                    )
                )
    return out


def _log_share(box: Row, img: Row) -> float:
    area = (box["xmax"] - box["xmin"]) * (box["ymax"] - box["ymin"])
    return math.log(max(area, 1e-9) / max(float(img["width"]) * float(img["height"]), 1.0))


def class_balance(counts: dict[str, int], task: TaskConfig, cfg: ValidateConfig, root: str) -> list[Finding]:
    """Dataset-level warnings on the accepted samples per taxonomy class."""
    out = [
        Finding(
            "CLASS_TOO_FEW",
            WARNING,
            root,
            f"class {c} has {counts.get(c, 0)} accepted samples (minimum {cfg.min_boxes_per_class})",
        )
        for c in task.classes
        if counts.get(c, 0) < cfg.min_boxes_per_class
    ]
    present = [counts.get(c, 0) for c in task.classes]
    ratio = max(present) / max(min(present), 1)
    if max(present) > 0 and ratio > cfg.max_class_imbalance:
        where = ", ".join(f"{c}: {counts.get(c, 0)}" for c in task.classes)
        out.append(
            Finding(
                "CLASS_IMBALANCE",
                WARNING,
                root,
                f"largest/smallest class = {ratio:.1f} (limit {cfg.max_class_imbalance:g}); {where}",
            )
        )
    return out


def decode_skipped(images: list[Row]) -> list[Finding]:
    """One dataset-level note when ingest ran header-only, so a fast run is never mistaken for a full
    check: those rows never had their pixels decoded (a truncated file looks healthy) and carry no
    perceptual hash (IMAGE_NEAR_DUPLICATE cannot fire). Manifests without the column were decoded."""
    skipped = [img for img in images if img.get("decode") == "header"]
    if not skipped:
        return []
    return [
        Finding(
            "DECODE_SKIPPED",
            INFO,
            dataset_root(images),
            f"header-only mode: truncated/corrupt pixel data and near-duplicates are not checked "
            f"({len(skipped)} of {len(images)} images; ingest_data.decode: full checks them)",
        )
    ]


def check_dataset(
    images: list[Row],
    orphans: list[Row],
    cfg: ValidateConfig,
    broken: set[str] | None = None,
    annotations: dict[str, list[Box]] | None = None,
    pairs: list[tuple[Row, Row, int]] | None = None,
) -> list[Finding]:
    """Every dataset-wide check that decides about individual files (class balance comes later, on
    what is finally accepted). Byte copies come last: which copy is kept depends on the image-level
    errors found so far (`broken`, from the per-image checks, plus the ones found here)."""
    out = [
        *orphan_annotations(orphans),
        *patient_checks(images),
        *filename_checks(images),
        *classes_txt_checks(images),
        *decode_skipped(images),
    ]
    broken = set(broken or ()) | {f.input_file for f in out if f.quarantines and f.input_file}
    return [*out, *duplicate_images(images, broken, annotations), *near_duplicate_images(images, cfg, pairs)]
