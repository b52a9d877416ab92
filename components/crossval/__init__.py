"""crossval: the grouped repeated k-fold report as its own stage."""
