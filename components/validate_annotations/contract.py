"""The data contract of the accepted tables, as a Great Expectations suite with Data Docs.

The Python checks decide what is accepted; this suite then proves, independently, that what goes
downstream honours the contract crop_patches relies on (boxes inside their image and large enough,
labels in the taxonomy, one row per box and per image, something to train on; boxes too small to
crop are kept for the detector and only exempt from the patch-size rule). A violation means a
check has a hole, so it quarantines the offending image (CONTRACT_VIOLATION, error) and the stage
fails when it cannot be charged to one. GX is imported only here, lazily (it takes ~10 s), with
analytics off. By default the file context is throw-away (nothing left in the repository); with
`validate_annotations.gx_project` set it is a project kept between runs: the suites are saved
(updated when the taxonomy changes), every run's validation results stay, and Data Docs list them
all. Either way this run's Data Docs are copied to `out_dir/data_docs/`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.task import TaskConfig
from components.validate_annotations.checks import ERROR, Finding
from components.validate_annotations.config import ValidateConfig

DOCS_DIR = "data_docs"
IMAGE_COLUMNS = ("rel_path", "sha256", "width", "height", "patient_id")
BOX_COLUMNS = ("rel_path", "box_index", "label", "xmin", "ymin", "xmax", "ymax", "width", "height", "for_patches")
# Boxes too small to crop stay in the table for the detector; only the others must be patch-sized.
_PATCH_ROWS = {"row_condition": "for_patches==True", "condition_parser": "pandas"}


def flatten(images: list[dict[str, Any]], boxes: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables the suite reads: one row per accepted image, one per accepted box (with its
    image's size and its own side lengths, so bounds are column comparisons)."""
    img_df = pd.DataFrame([{k: r.get(k) for k in IMAGE_COLUMNS} for r in images], columns=list(IMAGE_COLUMNS))
    sizes = {r["rel_path"]: (r.get("width"), r.get("height")) for r in images}
    box_df = pd.DataFrame(
        [
            {
                **{k: b.get(k) for k in BOX_COLUMNS[:7]},
                "width": sizes.get(b["rel_path"], (None, None))[0],
                "height": sizes.get(b["rel_path"], (None, None))[1],
                "for_patches": bool(b.get("for_patches", True)),
            }
            for b in boxes
        ],
        columns=list(BOX_COLUMNS),
    )
    for col in ("xmin", "ymin", "xmax", "ymax", "width", "height"):
        box_df[col] = pd.to_numeric(box_df[col], errors="coerce").astype("float64")
    box_df["box_w"], box_df["box_h"] = box_df.xmax - box_df.xmin, box_df.ymax - box_df.ymin
    return img_df, box_df


def _image_suite(gx: Any, gxe: Any) -> Any:
    suite = gx.ExpectationSuite(name="accepted_images")
    for exp in (
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="rel_path"),
        gxe.ExpectColumnValuesToBeUnique(column="sha256"),
        gxe.ExpectColumnValueLengthsToEqual(column="sha256", value=64),
        gxe.ExpectColumnValuesToNotBeNull(column="patient_id"),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=1),
    ):
        suite.add_expectation(exp)
    return suite


def _box_suite(gx: Any, gxe: Any, task: TaskConfig, cfg: ValidateConfig) -> Any:
    suite = gx.ExpectationSuite(name="accepted_boxes")
    for exp in (
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["rel_path", "box_index"]),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(task.classes)),
        gxe.ExpectColumnValuesToBeBetween(column="xmin", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="ymin", min_value=1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="width", column_B="xmax", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="height", column_B="ymax", or_equal=True),
        gxe.ExpectColumnValuesToBeBetween(column="box_w", min_value=cfg.min_box_side_px, **_PATCH_ROWS),
        gxe.ExpectColumnValuesToBeBetween(column="box_h", min_value=cfg.min_box_side_px, **_PATCH_ROWS),
    ):
        suite.add_expectation(exp)
    return suite


def _describe(cfg_json: dict[str, Any]) -> str:
    kwargs = {k: v for k, v in cfg_json.get("kwargs", {}).items() if k not in ("batch_id",)}
    return f"{cfg_json.get('type')}({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"


def _findings(result: Any, table: str, root: str) -> list[Finding]:
    """Each failed expectation → one CONTRACT_VIOLATION per offending image, or one for the table."""
    out: list[Finding] = []
    for r in result.results:
        if r.success:
            continue
        name = _describe(r.expectation_config.to_json_dict())
        rows = (r.result or {}).get("unexpected_index_list") or []
        paths = sorted({str(x["rel_path"]) for x in rows if isinstance(x, dict) and "rel_path" in x})
        if not paths:
            observed = (r.result or {}).get("observed_value")
            out.append(Finding("CONTRACT_VIOLATION", ERROR, root, f"{table}: {name} failed (observed {observed!r})"))
        out += [
            Finding("CONTRACT_VIOLATION", ERROR, p, f"{table}: {name} failed for this image", input_file=p)
            for p in paths
        ]
    return out


def check_contract(
    images: list[dict[str, Any]],
    boxes: list[dict[str, Any]],
    task: TaskConfig,
    cfg: ValidateConfig,
    out_dir: Path,
    root: str = ".",
) -> tuple[list[Finding], dict[str, Any]]:
    """Run both suites on the accepted tables; returns findings and a summary, writes Data Docs."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    img_df, box_df = flatten(images, boxes)
    with tempfile.TemporaryDirectory(prefix="lesionops-gx-") as tmp:
        project = Path(cfg.gx_project) if cfg.gx_project else Path(tmp)
        context = gx.get_context(mode="file", project_root_dir=str(project))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_or_update_pandas("validate_annotations")
        suites = {"accepted_images": (img_df, _image_suite(gx, gxe))}
        if task.sample == "patches":  # whole-image tasks train on images; boxes are optional there
            suites["accepted_boxes"] = (box_df, _box_suite(gx, gxe, task, cfg))
        findings: list[Finding] = []
        summary: dict[str, Any] = {}
        for table, (frame, suite) in suites.items():
            batch = _batch(source, table)
            definition = context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=table, data=batch, suite=context.suites.add_or_update(suite))
            )
            result = definition.run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["rel_path"]},
            )
            findings += _findings(result, table, root)
            summary[table] = {
                "success": bool(result.success),
                "rows": len(frame),
                "expectations": len(result.results),
                "failed": sum(not r.success for r in result.results),
            }
        context.build_data_docs()
        _copy_docs(project, out_dir / DOCS_DIR)
    return findings, summary


def _batch(source: Any, table: str) -> Any:
    """The whole-dataframe batch of `table`, reusing the asset a kept project already has."""
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(table)
    try:
        return asset.get_batch_definition("all")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("all")


def _copy_docs(gx_root: Path, dest: Path) -> None:
    site = next(gx_root.rglob("local_site"), None)
    if site is None or not (site / "index.html").is_file():
        raise FileNotFoundError(f"Great Expectations built no Data Docs under {gx_root}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(site, dest)
