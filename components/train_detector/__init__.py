"""train_detector: a torchvision Faster R-CNN on the raw photos and boxes, logged to MLflow."""
