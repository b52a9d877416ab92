"""Claim: how often monitor_drift's `skin_tone` test sees a clinic whose patients got darker, by
window size, and how close that is to the most any test of the window's tone mix could see.

Why: at severity 0.5 (half the lighter-skinned patients gone) benchmarks/drift.py found the shift in
96 % of windows of 500 with seed 0, 73 % with seed 1, 7 % with seed 2. Each of its rows is one
draw of reference and shifted patients; this benchmark draws several and asks whether the test or
the data is the limit.

Per seed (`--seeds`): a reference pool (`--reference` photos, whole patients with their 2-6 photos
each) and a skin_tone pool (`--pool` photos) of lesionops.synth.shift at `--severity`; per photo
the ITA° of the whole frame (image_stats.image_features, as serving stores it). Windows: `--windows`
per size of whole patients drawn from the pool (a clinic uploads whole patients), each tested as
monitor_drift tests a window:

- `skin_tone`: the repository's test (monitor_drift.tone.tone_check: KS and median shift of ITA°,
  one min-p family, p from `calibration.windows` whole-patient windows of the reference against the
  rest, `skin_tone_alpha`), and each of its two statistics alone at the same level;
- `oracle`: the same calibration, but the statistic is the (size-scaled) difference in the share of patients the
  generator made darker-skinned (shift.darker_skinned), photo-weighted: a perfect tone measurement
  cut at the generator's own threshold, which is what the shift selects on.

The `darker share` column says how far the pool really moved: the darker share of the reference's photos
and of the pool's (the population values at severity 0.5 are ~37 % and ~54 %).

    .venv/bin/python benchmarks/tone_power.py [--seeds 0 1 2 3] [--sizes 500 1000] [--severity 0.5]
        [--reference 2000] [--pool 3000] [--windows 100] [--workers 2] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.image_stats import image_features
from components.common.params import load_params, section
from components.common.skin_tone import ITA_COLUMN
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.stats import group_windows, monte_carlo_p, size_scale, window_null
from components.monitor_drift.tone import tone_check, tone_statistics
from lesionops.synth.shift import ShiftConfig, darker_skinned, stream

CHUNK = 250  # photos per generation task (one seeded stream each, as benchmarks/drift.py)


def _generate(task: tuple[str, int, int, float]) -> pd.DataFrame:
    """One seeded stream: per photo its ITA°, patient and whether the generator made it darker-skinned."""
    shift, n, seed, severity = task
    rows = []
    for item in stream(ShiftConfig(shift, severity, n, seed, 256, 192)):
        patient = int(item.patient[1:]) - 1
        rows.append(
            {
                ITA_COLUMN: image_features(item.image(), 256)[ITA_COLUMN],
                "patient_id": f"{seed}:{patient}",
                "darker": darker_skinned(seed, patient),
            }
        )
    return pd.DataFrame(rows)


def pools(seed: int, args: argparse.Namespace, executor: ProcessPoolExecutor) -> dict[str, pd.DataFrame]:
    """The reference and skin_tone pools of one seed (streams seeded apart, so patients differ)."""
    tasks = {"reference": ("none", args.reference, 1), "shifted": ("skin_tone", args.pool, 2)}
    jobs = {
        name: [
            executor.submit(
                _generate, (shift, min(CHUNK, size - c), seed * 10_000 + p * 100 + c // CHUNK, args.severity)
            )
            for c in range(0, size, CHUNK)
        ]
        for name, (shift, size, p) in tasks.items()
    }
    out = {name: pd.concat([j.result() for j in js], ignore_index=True) for name, js in jobs.items()}
    return {name: frame[np.isfinite(frame[ITA_COLUMN])].reset_index(drop=True) for name, frame in out.items()}


def _oracle(ref: np.ndarray, cur: np.ndarray) -> float:
    """The difference in darker share, size-scaled as the repository's tests are (stats.size_scale)."""
    return float(abs(cur.mean() - ref.mean()) * size_scale(len(ref), len(cur)))


def rates(
    ref: pd.DataFrame, pool: pd.DataFrame, n: int, cfg: MonitorConfig, windows: int, seed: int
) -> dict[str, float]:
    """Share of whole-patient windows of n photos flagged by the skin_tone test, by each of its two
    statistics alone (each at the same level), and by the oracle."""
    rng = np.random.default_rng(seed)
    ita, groups = ref[ITA_COLUMN].to_numpy(float), ref.patient_id.to_numpy(str)
    darker = ref.darker.to_numpy(float)
    count, alpha = cfg.calibration.windows, cfg.skin_tone_alpha
    tone_null = window_null(ita, groups, n, count, rng, tone_statistics)
    oracle_null = window_null(darker, groups, n, count, rng, lambda r, w: np.array([_oracle(r, w)]))[:, 0]
    found = dict.fromkeys(("skin_tone", "ks_alone", "median_alone", "oracle"), 0)
    for w in group_windows(pool.patient_id.to_numpy(str), n, windows, rng):
        cur = pool.iloc[w]
        check = tone_check(ita, cur[ITA_COLUMN].to_numpy(float), tone_null, alpha)
        found["skin_tone"] += check.verdict == "drift"
        found["ks_alone"] += check.detail["p_ks"] <= alpha
        found["median_alone"] += check.detail["p_median_shift"] <= alpha
        found["oracle"] += monte_carlo_p(_oracle(darker, cur.darker.to_numpy(float)), oracle_null) <= alpha
    return {k: v / windows for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--severity", type=float, default=0.5)
    parser.add_argument("--reference", type=int, default=2000, help="reference photos (windows ≤ half of them)")
    parser.add_argument("--pool", type=int, default=3000, help="shifted photos per seed")
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    cfg = section(load_params(path=args.params), "monitor_drift", MonitorConfig)
    start, table = time.perf_counter(), []
    with ProcessPoolExecutor(max_workers=args.workers) as executor:
        for seed in args.seeds:
            p = pools(seed, args, executor)
            shares = (float(p["reference"].darker.mean()), float(p["shifted"].darker.mean()))
            for n in args.sizes:
                table.append(
                    {
                        "seed": seed,
                        "n": n,
                        "shares": shares,
                        **rates(p["reference"], p["shifted"], n, cfg, args.windows, seed),
                    }
                )
                print(f"  seed {seed}, n = {n}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    print(
        f"\nskin_tone shift, severity {args.severity}: {args.windows} whole-patient windows per row, reference "
        f"{args.reference} photos, shifted pool {args.pool}; alpha {cfg.skin_tone_alpha}, "
        f"{cfg.calibration.windows} calibration windows"
    )
    columns = ("skin_tone", "ks_alone", "median_alone", "oracle")
    print(f"{'seed':>5}{'n':>6}{'darker share ref → pool':>26}" + "".join(f"{c:>14}" for c in columns))
    for row in table:
        ref, pool = row["shares"]
        shares = f"{ref:.1%} → {pool:.1%}"
        print(f"{row['seed']:>5}{row['n']:>6}{shares:>26}" + "".join(f"{row[c]:>14.0%}" for c in columns))
    for n in args.sizes:
        rows = [r for r in table if r["n"] == n]
        means = ", ".join(f"{c} {np.mean([r[c] for r in rows]):.0%}" for c in columns)
        print(f"mean over {len(rows)} seeds, n = {n}: {means}")


if __name__ == "__main__":
    main()
