"""What wraps DVC's commands that touch the checkout: `./pipeline repro` and `./pipeline dvc` (command), the
run that is kept or put back (checkout_run, over the file copies of snapshot), and the up-to-date shortcut
(uptodate)."""
