"""evaluate_model: test-set metrics for the challenger and the champion, and the gate decision."""
