"""Code shared by every stage: params, storage, labelImg formats, images, manifests, MLflow."""
