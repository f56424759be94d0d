"""`./pipeline sweep`: many configurations of the pipeline as Ray tasks (docs/sweep.md)."""
