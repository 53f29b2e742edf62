"""The course: run a lesson with `python lessons/05_convolution_as_im2col.py`, check an
exercise with `python -m lessons.check 05` (both from the repository's root)."""
