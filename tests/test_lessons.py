"""Every lesson runs to completion, quickly, and together they cover minran/."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
TIME_LIMIT_S = 90  # per lesson, on a 2-core CI machine


def test_there_is_a_course():
    assert len(LESSONS) >= 12
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs(lesson):
    done = subprocess.run([sys.executable, str(lesson)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIME_LIMIT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "a lesson must print what the reader should look at"
    assert "Exercises" in lesson.read_text()


def test_lessons_touch_every_file_of_minran():
    named = set()
    for lesson in LESSONS:
        header = lesson.read_text().split('"""')[1]
        for files in re.findall(r"Files:(.*?)\nPaper:", header, re.S):
            for path in re.findall(r"minran/[\w/]+(?:\.py|/)", files):
                named.add(path)
    wanted = {str(p.relative_to(ROOT)) for p in (ROOT / "minran").rglob("*.py")
              if p.name != "__init__.py" and p.stem not in ("visualize", "experiments")}
    covered = {w for w in wanted if w in named or any(w.startswith(n) for n in named if n.endswith("/"))}
    assert wanted - covered == set()
