"""The `train_model` section of params.yaml. TrainConfig is defined with the classifier library
(components/common/classifier/config.py) because crossval trains the same network per fold from
the same section."""

from components.common.classifier.config import TrainConfig

__all__ = ["TrainConfig"]
