"""Split groups: the images that must land in one split, whoever their patient is.

A patient split keeps one patient's photos together, but public datasets ship the same picture
twice (byte copies, re-encoded or resized copies) under different "patients" — and without patient
ids every image is its own patient. Training on one copy and testing on the other is a leak that no
patient check can see. validate_annotations therefore joins, by union-find, images that share a
known patient id, the same bytes (sha256) or a perceptual hash within the near-duplicate threshold;
crop_patches splits (and folds, and bootstraps) by the resulting `split_group`.

The id of a group is its smallest patient id, so a group of one patient keeps exactly the split it
had before split groups existed; only groups that merge patients can move.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
EXAMPLES = 5  # merged groups listed in a report, largest first


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {x: x for x in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression: chains of near-duplicates stay shallow
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def split_groups(images: list[Row], near_pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """{rel_path: (split_group, reason)} for every image row.

    `near_pairs` are (rel_path, rel_path) pairs of look-alikes. `reason` says what merged the
    group's patients: "", "sha256", "phash" or "phash+sha256".
    """
    patient = {str(img["rel_path"]): str(img["patient_id"]) for img in images}
    uf = _UnionFind(patient)
    edges: list[tuple[str, str, str]] = []
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for img in images:
        by_key[("patient", str(img["patient_id"]))].append(str(img["rel_path"]))
        if img.get("sha256") and not img.get("image_error"):
            by_key[("sha256", str(img["sha256"]))].append(str(img["rel_path"]))
    for (kind, _), members in by_key.items():
        edges += [(kind, members[0], other) for other in members[1:]]
    edges += [("phash", a, b) for a, b in near_pairs if a in patient and b in patient]
    for _, a, b in edges:
        uf.union(a, b)
    members_of: dict[str, list[str]] = defaultdict(list)
    for rel in patient:
        members_of[uf.find(rel)].append(rel)
    reasons: dict[str, set[str]] = defaultdict(set)
    for kind, a, b in edges:
        if patient[a] != patient[b]:
            reasons[uf.find(a)].add(kind)
    out: dict[str, tuple[str, str]] = {}
    for root, members in members_of.items():
        group = min(patient[m] for m in members)
        out.update({m: (group, "+".join(sorted(reasons[root]))) for m in members})
    return out


def group_of(row: Row) -> str:
    """The split unit of an accepted row: its split group, or its patient on tables without one."""
    group = row.get("split_group")
    return str(row["patient_id"]) if group is None or group != group or group == "" else str(group)


def summarize(images: list[Row], max_fraction: float | None = None) -> tuple[dict[str, Any], list[str]]:
    """The `split_groups` report block over image rows (rel_path, patient_id, split_group, reason)
    and warnings for merged groups holding more than `max_fraction` of the images (a chain of
    near-duplicates can swallow a dataset, and all of it then lands in one split)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for img in images:
        groups[group_of(img)].append(img)
    merged = [(g, m) for g, m in groups.items() if len({str(r["patient_id"]) for r in m}) > 1]
    merged.sort(key=lambda gm: (-len(gm[1]), gm[0]))
    described = [_describe(g, m) for g, m in merged]
    block: dict[str, Any] = {
        "n_images": len(images),
        "n_groups": len(groups),
        "n_merged_groups": len(merged),
        "n_images_in_merged_groups": sum(len(m) for _, m in merged),
        "n_patients_in_merged_groups": sum(d["n_patients"] for d in described),
        "largest": _describe(*max(groups.items(), key=lambda gm: (len(gm[1]), gm[0]))) if groups else None,
        "examples": described[:EXAMPLES],
    }
    warnings = []
    if max_fraction is not None and images:
        for d in described:
            if d["n_images"] > max_fraction * len(images):
                warnings.append(
                    f"split group {d['split_group']!r} holds {d['n_images']} of {len(images)} images "
                    f"({d['n_images'] / len(images):.0%}, limit {max_fraction:.0%}), merged by "
                    f"{d['reason'] or 'patient'}: a chain of near-duplicates? All of it lands in one "
                    "split; lower validate_annotations.near_duplicate_phash_distance if they differ"
                )
    return block, warnings


def _describe(group: str, members: list[Row]) -> dict[str, Any]:
    reasons = Counter(str(r.get("split_group_reason") or "") for r in members)
    return {
        "split_group": group,
        "n_images": len(members),
        "n_patients": len({str(r["patient_id"]) for r in members}),
        "reason": reasons.most_common(1)[0][0] if reasons else "",
        "images": sorted(str(r["rel_path"]) for r in members)[:EXAMPLES],
    }
