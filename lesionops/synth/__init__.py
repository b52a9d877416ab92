"""Seeded synthetic datasets (images + labelImg XML) so the pipeline can run without patient data."""
