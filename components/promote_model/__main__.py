"""`python -m components.promote_model --model DIR --evaluation DIR --out DIR`: register + alias."""

from __future__ import annotations

from pathlib import Path

from components.common.cli import base_parser, params_from, run_main
from components.common.params import section
from components.common.tracking import TrackingConfig
from components.promote_model.core import PromoteConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--model", type=Path, required=True, help="train_model output folder")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluate_model output folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (promotion.json)")
    args = parser.parse_args(argv)
    doc = params_from(args)
    result = run(section(doc, "promote_model", PromoteConfig), section(doc, "mlflow", TrackingConfig),
                 args.model, args.evaluation, args.out)
    print(f"promote_model: {result['name']} v{result['version']} is @{result['alias']}"
          + (f" (previous v{result['previous_version']})" if result["previous_version"] else ""))


if __name__ == "__main__":
    run_main(main)
