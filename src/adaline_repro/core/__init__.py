"""The shared foundation every stage and command stands on: exit codes and error types (errors), params.yaml
as frozen objects (params), deterministic atomic files (files), the CPU kernel pins (cpu_pins), where things
are in a checkout (checkout) and which tracking store it logs to (tracking_uri), the prepared tables
(dataset) and each backend's result files (results), a process that can be told from a reused PID
(processes), and what a run and its stages hand each other (run_env).

It imports nothing of the project above it; params.py reads only the backend registry's names.
"""
