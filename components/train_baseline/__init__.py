"""train_baseline: HOG + colour-histogram features and a linear SVM, the floor every CNN must beat."""
