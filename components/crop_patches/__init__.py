"""crop_patches: crop accepted labelImg boxes into a patient-split patch dataset."""
