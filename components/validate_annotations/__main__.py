"""`python -m components.validate_annotations --manifest DIR --out DIR`: check and quarantine.
Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--manifest", type=input_location, required=True, help="folder holding manifest.parquet")
    parser.add_argument("--out", type=output_location, required=True, help="output folder")
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        tracking = section(doc, "mlflow", TrackingConfig) if "mlflow" in doc else None
        report = run(
            section(doc, "validate_annotations", ValidateConfig), load_task(doc), args.manifest, args.out, tracking
        )
    print(
        f"validate_annotations: {report['n_accepted_images']}/{report['n_images']} images accepted, "
        f"{report['n_quarantined']} files quarantined, {report['n_accepted_boxes']} boxes, "
        f"findings {report['by_code'] or 'none'}"
    )


if __name__ == "__main__":
    run_main(main)
