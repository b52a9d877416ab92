"""ingest_data: inventory a labelImg dataset (folder, .zip or S3 prefix) into one manifest table."""
