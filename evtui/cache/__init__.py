"""Exact and semantic caption cache on diskcache."""
