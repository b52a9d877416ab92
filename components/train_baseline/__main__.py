"""`python -m components.train_baseline --patches DIR --out DIR`: HOG + HSV histograms + linear SVM.
Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.train_baseline.config import BaselineConfig
from components.train_baseline.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--patches", type=input_location, required=True, help="crop_patches output folder")
    parser.add_argument(
        "--out", type=output_location, required=True, help="output folder (metrics, model, confusion matrix)"
    )
    parser.add_argument("--data-version", default="unknown", help="DVC hash of the raw data")
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        report = run(
            section(doc, "train_baseline", BaselineConfig),
            load_task(doc),
            section(doc, "mlflow", TrackingConfig),
            args.patches,
            args.out,
            args.data_version,
        )
    if "skipped" in report:
        print(f"train_baseline: skipped: {report['skipped']}")
        return
    print(
        f"train_baseline: run {report['run_id']} C={report['C']:g} test macro-F1 "
        f"{report['test']['macro_f1']:.3f} accuracy {report['test']['accuracy']:.3f} "
        f"(val macro-F1 {report['val']['macro_f1']:.3f}, {report['n_features']} features)"
    )


if __name__ == "__main__":
    run_main(main)
