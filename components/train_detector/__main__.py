"""`python -m components.train_detector --patches DIR --out DIR`: train a detector, log to MLflow.
Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.train_detector.config import DetectorConfig
from components.train_detector.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--patches", type=input_location, required=True, help="crop_patches output folder (with detection/)"
    )
    parser.add_argument("--out", type=output_location, required=True, help="output folder (detector.pt, summary)")
    parser.add_argument("--data-version", default="unknown", help="DVC hash of the raw data")
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        summary = run(
            section(doc, "train_detector", DetectorConfig),
            load_task(doc),
            section(doc, "mlflow", TrackingConfig),
            args.patches,
            args.out,
            args.data_version,
        )
    if "skipped" in summary:
        print(f"train_detector: skipped: {summary['skipped']}")
        return
    print(
        f"train_detector: run {summary['run_id']} best val mAP@0.5 {summary['best_val_map50']:.3f} "
        f"at epoch {summary['best_epoch']} ({summary['epochs_run']} epochs)"
    )


if __name__ == "__main__":
    run_main(main)
