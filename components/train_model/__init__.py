"""train_model: train a torchvision classifier on the patch dataset and log it to MLflow."""
