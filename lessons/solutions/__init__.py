"""One answer to each exercise; `python -m lessons.check --solutions` checks them (CI does)."""
