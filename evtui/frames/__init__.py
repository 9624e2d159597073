"""Frame encoding for models and fingerprints for the cache."""
