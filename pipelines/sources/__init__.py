"""What ingest reads: folders, tar.zst archives, LMDB, the text parquet, and a lake's release."""
