"""`python -m components.evaluate_detector --patches DIR --model DIR --out DIR`: test mAP + gate.
Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.evaluate_detector.config import EvaluateDetectorConfig
from components.evaluate_detector.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--patches", type=input_location, required=True, help="crop_patches output folder (with detection/)"
    )
    parser.add_argument("--model", type=input_location, required=True, help="train_detector output folder")
    parser.add_argument(
        "--out", type=output_location, required=True, help="output folder (metrics, decision, predictions)"
    )
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        report = run(
            section(doc, "evaluate_detector", EvaluateDetectorConfig),
            load_task(doc),
            section(doc, "mlflow", TrackingConfig),
            args.patches,
            args.model,
            args.out,
        )
    verdict = "PASSED" if report["passed"] else f"FAILED ({', '.join(report['failed'])})"
    print(
        f"evaluate_detector: skipped: {report['skipped']}"
        if "skipped" in report
        else f"evaluate_detector: gate {verdict}"
    )


if __name__ == "__main__":
    run_main(main)
