"""Tracking in one place: the MLflow store (store), the check that a store on the network answers
(reachable), the execution an executed pipeline logs (execution) and the runs dead processes left RUNNING
(orphans)."""
