"""monitor_drift: compare a window of production images with the training images, then decide.

Images are summarised by cheap acquisition statistics (brightness, colour, sharpness, size) because
what changes first in the clinic is the capture (a new camera, lighting, a broken upload), not the
disease. A KS test per statistic gives the verdict; Evidently renders the report humans read; a
pure policy turns verdict + history + expert feedback into retrain / alert.
"""
