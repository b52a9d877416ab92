"""validate_annotations: check every image and labelImg box, quarantine only what is broken."""
