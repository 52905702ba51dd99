"""Sources of BigEarthNet data the ingest reads: folders, tar.zst archives, LMDB, text parquet."""
