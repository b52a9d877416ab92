"""Which epoch's weights a run keeps (`train_model.keep_weights`).

`best` keeps the epoch with the highest val macro-F1 (seeds 000/003). On a val split that is
already near its ceiling after an epoch or two, that maximum is noise, and it can pick weights
the schedule had barely started on: on ldc_cells (784 val patches from 232 groups) val macro-F1
peaked at 0.972 in epoch 1 of 20, still in OneCycle's warm-up, and ended at 0.959. Epoch 1's
weights scored 0.938 on test, the last epoch's 0.959 — the val split could not tell the two apart
(paired patient bootstrap of best − last: −0.003 to +0.028), the test split could.

`latest_tied` keeps the latest epoch that the best one does not beat *significantly*: the paired
patient bootstrap (components/common/bootstrap.py, the same one the gate uses) of
macro-F1(best epoch) − macro-F1(this epoch) over the val split's resampling units; its lower
bound at `keep_confidence` ≤ 0 means tied. A tie goes to the later epoch: it has had more of
the schedule and a lower learning rate. An epoch the best one does beat significantly is never
kept, so a run that really overfits still goes back to its best weights. Early stopping is not
affected: it still counts epochs without a `min_delta` gain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.common.bootstrap import BootstrapConfig, paired_difference, patient_counts

RULES = ("best", "latest_tied")


class TieTest:
    """The paired bootstrap over one val split, its resamples drawn once for the whole run."""

    def __init__(
        self, labels: np.ndarray, units: Sequence[str], n_classes: int, confidence: float, resamples: int, seed: int
    ) -> None:
        self.labels, self.n_classes, self.confidence = np.asarray(labels), n_classes, confidence
        cfg = BootstrapConfig(n_resamples=resamples, confidence=confidence, seed=seed)
        self.counts, self.index = patient_counts(units, cfg, where="train_model")

    def tied(self, best: np.ndarray, candidate: np.ndarray) -> bool:
        """True when the best epoch's val predictions do not beat `candidate`'s significantly."""
        low, _ = paired_difference(
            self.labels, best, candidate, self.counts, self.index, self.n_classes, self.confidence
        )
        return low <= 0.0
