"""Functions to fill in, one file per lesson that has one; `python -m lessons.check NN`
checks yours against minran. The answers are in lessons/solutions/, if you are stuck."""
