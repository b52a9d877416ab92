"""monitor_drift: compare a window of production images with the model's reference, then decide.

Images are summarised by cheap acquisition statistics (brightness, colour, sharpness, size) because
what changes first in the clinic is the capture (a new camera, lighting, a broken upload), not the
disease; from the serving store also by the model's embeddings, predicted classes and calibrated
confidences, and by the error rate of expert-reviewed feedback. Every window test is calibrated on
whole-patient windows of the reference (stats.py); Evidently renders the report humans read; a pure
policy turns verdict + history + expert feedback into retrain / alert.
"""
