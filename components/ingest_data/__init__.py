"""ingest_data: inventory a labelImg dataset folder into one manifest table."""
