"""benchmarks/gpu_check.sh, the one command a lent GPU machine runs, dry-run here: without a
GPU every step that needs one fails with its own reason in the report (none passes by doing
nothing), and the whole check keeps within its time budget."""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = ("setup", "versions", "gpu-tier", "bench", "train", "memcheck", "racecheck")


def check(tmp_path, budget):
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable,
                               "GPU_CHECK_BUDGET": str(budget)})
    rows = dict(re.findall(r"^\| ([a-z-]+) \| (.*?) \|", (tmp_path / "report.md").read_text(),
                           re.M))
    del rows["step"]   # the table's header
    return done.returncode, rows


def test_without_a_gpu_each_gpu_step_fails_with_its_reason(tmp_path):
    from minran import backend
    if backend.gpu_available():
        import pytest
        pytest.skip("a GPU is here: the check is meant to pass")
    rc, rows = check(tmp_path, 500)
    assert rc != 0 and list(rows) == list(STEPS), rows
    assert rows["setup"] == rows["versions"] == "pass", rows
    for step in STEPS[2:]:
        result = rows[step]
        assert result.startswith("FAIL (exit ") and len(result.split("): ", 1)[1]) > 10, (step,
                                                                                      result)
    assert "CuPy" in rows["train"] and "compute-sanitizer" in rows["memcheck"]


def test_a_step_that_the_budget_cannot_hold_is_not_started(tmp_path):
    rc, rows = check(tmp_path, 19)   # under 20 s left before the first step: none starts
    assert rc != 0 and list(rows) == list(STEPS)
    assert all(r.startswith("FAIL: not started") for r in rows.values()), rows
