"""The anchor comparison of issue 12: exact loss deltas against torch-pruning's criteria at equal counts."""
