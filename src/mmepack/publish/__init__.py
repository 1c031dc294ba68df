"""Putting artifacts on S3: staging for branches, production for main, never overwriting a
published version, with a provenance manifest beside each object."""
