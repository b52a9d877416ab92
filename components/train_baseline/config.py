"""The `train_baseline` section of params.yaml. BaselineConfig is defined with the baseline itself
(components/common/baseline.py) because crossval fits the same baseline per fold from this section."""

from components.common.baseline import BaselineConfig

__all__ = ["BaselineConfig"]
