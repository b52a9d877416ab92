"""`python -m components.monitor_drift --reference DIR --source DIR --current DIR --out DIR`: drift + retrain decision."""

from __future__ import annotations

from pathlib import Path

from components.common.cli import base_parser, params_from, run_main
from components.common.params import section
from components.monitor_drift.core import MonitorConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--reference", type=Path, required=True,
                        help="crop_patches output folder (its train split is the reference)")
    parser.add_argument("--source", type=Path, required=True, help="raw dataset folder the reference was cropped from")
    parser.add_argument("--current", type=Path, required=True, help="folder of current-window images (recursive)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (drift.json, report, decision)")
    parser.add_argument("--history", type=Path, default=None,
                        help="JSON list of earlier windows' verdicts; read, then this window is appended")
    parser.add_argument("--accepted-feedback", type=int, default=0,
                        help="expert-reviewed feedback samples accepted since the last training")
    args = parser.parse_args(argv)
    cfg = section(params_from(args), "monitor_drift", MonitorConfig)
    result = run(cfg, args.reference, args.source, args.current, args.out, args.history, args.accepted_feedback)
    drift, decision = result["drift"], result["decision"]
    print(f"monitor_drift: {drift['verdict']} ({len(drift['drifted_features'])} features drifted) on "
          f"{drift['counts']['current_images']} image(s); retrain={'yes' if decision['retrain'] else 'no'} "
          f"alert={'yes' if decision['alert'] else 'no'}: {'; '.join(decision['reasons'])}")


if __name__ == "__main__":
    run_main(main)
