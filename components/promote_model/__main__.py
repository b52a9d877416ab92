"""`python -m components.promote_model --model DIR --evaluation DIR --out DIR [--patches DIR]`: register + alias.
Every DIR may also be an s3://bucket/prefix URI.

Exit codes: 0 promoted (or already champion), 3 gate failed, 4 promotion refused (the champion
moved since the evaluation, or another promotion held the lock), 2 any other input/config error.
"""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.tracking import TrackingConfig
from components.promote_model.config import PromoteConfig
from components.promote_model.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--model", type=input_location, required=True, help="train output folder (train_summary.json)")
    parser.add_argument(
        "--evaluation", type=input_location, required=True, help="evaluation folder (metrics, decision)"
    )
    parser.add_argument(
        "--out", type=output_location, required=True, help="output folder (promotion.json, model_card.md)"
    )
    parser.add_argument(
        "--patches",
        type=input_location,
        default=None,
        help="crop_patches output folder: its crop_report.json adds class counts to the model card",
    )
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        result = run(
            section(doc, "promote_model", PromoteConfig),
            section(doc, "mlflow", TrackingConfig),
            args.model,
            args.evaluation,
            args.out,
            args.patches,
        )
    if "skipped" in result:
        print(f"promote_model: skipped: {result['skipped']}")
        return
    state = "is" if result["moved"] else "was already"
    print(
        f"promote_model: {result['name']} v{result['version']} {state} @{result['alias']}"
        + (f" (@{result['previous_alias']} v{result['previous_version']})" if result["previous_version"] else "")
    )


if __name__ == "__main__":
    run_main(main)
