"""`python -m components.evaluate_detector --patches DIR --model DIR --out DIR`: test mAP + gate."""

from __future__ import annotations

from pathlib import Path

from components.common.cli import base_parser, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.evaluate_detector.core import EvaluateDetectorConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--patches", type=Path, required=True, help="crop_patches output folder (with detection/)")
    parser.add_argument("--model", type=Path, required=True, help="train_detector output folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (metrics, decision, predictions)")
    args = parser.parse_args(argv)
    doc = params_from(args)
    report = run(section(doc, "evaluate_detector", EvaluateDetectorConfig), load_task(doc),
                 section(doc, "mlflow", TrackingConfig), args.patches, args.model, args.out)
    verdict = "PASSED" if report["passed"] else f"FAILED ({', '.join(report['failed'])})"
    print(f"evaluate_detector: gate {verdict}")


if __name__ == "__main__":
    run_main(main)
