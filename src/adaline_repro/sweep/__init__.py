"""`./pipeline sweep`: many configurations of the pipeline as Ray tasks (docs/sweep.md).

driver (the command) over grid (the trials, as DVC expands `-S`), cluster (Ray, embedded or joined),
worker (what a Ray worker runs) and trial (the stages' own code, in-process); journal (resume), table (the
results as a pandas frame: trials.csv), summary (summary.md), figure (the agreement map) and verify
(trials re-run through `dvc exp run`); tracking/sweep_runs.py logs them to MLflow beside the trials.
"""
