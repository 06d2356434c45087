"""Stage implementations; the pipeline reaches them through the registry."""
