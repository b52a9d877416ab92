"""evaluate_detector: test-set mAP for the challenger detector and the champion, and the gate decision."""
