"""`python -m components.evaluate_model --patches DIR --model DIR --out DIR [--baseline DIR]
[--validation DIR]`: test metrics, CIs, calibration, and the gate. Every DIR may also be an
s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.evaluate_model.core import EvaluateConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--patches", type=input_location, required=True, help="crop_patches output folder")
    parser.add_argument("--model", type=input_location, required=True, help="train_model output folder")
    parser.add_argument("--out", type=output_location, required=True, help="output folder (metrics, decision, plots)")
    parser.add_argument(
        "--baseline",
        type=input_location,
        help="train_baseline output folder (baseline_metrics.json); without it the beats_baseline rule fails",
    )
    parser.add_argument(
        "--validation",
        type=input_location,
        help="validate_annotations output folder (validation_report.json); without it "
        "the validation_passed rule fails when required",
    )
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        cfg, task = section(doc, "evaluate_model", EvaluateConfig), load_task(doc)
        tracking = section(doc, "mlflow", TrackingConfig)
        report = run(
            cfg,
            task,
            tracking,
            args.patches,
            args.model,
            args.out,
            baseline_dir=args.baseline,
            validation_dir=args.validation,
        )
        verdict = "PASSED" if report["passed"] else f"FAILED ({', '.join(report['failed'])})"
        print(
            f"evaluate_model: skipped: {report['skipped']}"
            if "skipped" in report
            else f"evaluate_model: gate {verdict}"
        )


if __name__ == "__main__":
    run_main(main)
