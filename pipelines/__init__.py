"""Kubeflow pipeline definitions (kfp DSL only) and the drivers that compile or run them locally."""
