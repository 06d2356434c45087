"""Training of restorer's own models (run as ``python -m restorer.train.<model>``)."""
