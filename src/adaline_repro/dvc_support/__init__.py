"""What the project adds to DVC's own commands, and the one seam onto DVC's internals:

- internals: DVC's private files and its own failures, read in one place against the pinned DVC;
- overrides: `-S` values read, expanded and applied by DVC's own code, and validated before DVC starts;
- exp_show: `./pipeline dvc exp show`'s 120-column default view;
- plots_page: the page `dvc plots show` fills, with Vega inline so it draws offline.

The commands that use them (`./pipeline repro`, `./pipeline dvc`) are in repro/.
"""
