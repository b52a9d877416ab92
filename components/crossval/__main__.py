"""`python -m components.crossval --patches DIR --out DIR [--data-version V]`: the grouped repeated
k-fold report (seed 002's 10 × 3) — the classifier and the HOG+SVM baseline trained per fold of
crop_patches' folds.parquet. Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.baseline import BaselineConfig
from components.common.classifier.config import TrainConfig
from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.crossval.config import CrossvalConfig
from components.crossval.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--patches",
        type=input_location,
        required=True,
        help="crop_patches output folder with folds.parquet (crop_patches.kfold.enabled: true)",
    )
    parser.add_argument("--out", type=output_location, required=True, help="report folder (kfold_report.*)")
    parser.add_argument("--data-version", default="unknown", help="the raw data's version, recorded with the run")
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        report = run(
            section(doc, "crossval", CrossvalConfig),
            load_task(doc),
            section(doc, "mlflow", TrackingConfig),
            args.patches,
            args.out,
            section(doc, "train_model", TrainConfig),
            section(doc, "train_baseline", BaselineConfig),
            args.data_version,
        )
    if "skipped" in report:
        print(f"crossval: skipped: {report['skipped']}")
    else:
        print(
            f"crossval: {report['n_folds_run']} fold(s) × {report['models']} → {args.out} "
            f"(MLflow run {report['parent_run_id']})"
        )


if __name__ == "__main__":
    run_main(main)
