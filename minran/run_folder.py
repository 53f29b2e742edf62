"""A run's folder (--out), and what it promises:

- A new run creates the folder (with any missing parents) and writes a file there before it
  trains, so a folder that cannot take the run's files fails at once. If the run fails or is
  stopped before its first checkpoint, it removes the folders it created: a failed start
  leaves nothing behind.
- A folder that already holds a run (checkpoint.pkl, log.csv or result.json) is refused,
  unless that run goes on there (--resume) or --overwrite says to replace it.
- --overwrite moves the old run's files into a hidden folder inside --out and deletes them
  only once the new run has written its first checkpoint; a failure or Ctrl-C before then
  puts them back, byte for byte. If the process is killed in between, they wait in that
  folder, and every later run there refuses to start until they are moved back or deleted.
"""
import contextlib
import os
import pathlib
import shutil
import tempfile

RUN_FILES = ("checkpoint.pkl", "log.csv", "result.json")
ASIDE = ".replaced-by-overwrite"   # where --overwrite keeps the old run meanwhile


class RunFolderError(RuntimeError):
    """An --out that cannot take this run; the message names the folder and the fix."""


def missing_folders(path):
    """The folders of `path` that do not exist yet, innermost first: what
    `mkdir(parents=True)` will create, in the order `remove_empty` takes them back."""
    missing, folder = [], pathlib.Path(path)
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders):
    """Remove each folder while it is empty (innermost first); leave any that is not."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def temporary(path):
    """Where `path` is written before it is renamed into place (trainer.save_atomic)."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.tmp")


def refuse_a_file(out):
    """--out must be a folder, or not exist yet."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder; give the path of a "
                             f"folder (a new one is created)")


def existing_run_files(out):
    """The files of an earlier run in `out` (checkpoint, log, result), by name."""
    return [name for name in RUN_FILES if (pathlib.Path(out) / name).exists()]


class RunFolder:
    """`with RunFolder(out, overwrite) as folder:` around a run; call `folder.keep()` once the
    run has written its first checkpoint. `refuse_a_run=False` takes a folder whatever it
    holds, and sets nothing aside: for the run that goes on there (--resume), or for files
    that are not a run's (pictures)."""

    def __init__(self, out, overwrite=False, refuse_a_run=True):
        self.out, self.overwrite, self.refuse_a_run = pathlib.Path(out), overwrite, refuse_a_run
        self.created = []       # folders this run made, innermost first
        self.aside = None       # the hidden folder holding the replaced run's files
        self.kept = False

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None:
            self.abandon()
        return False

    def open(self):
        """Refuse, create and check the folder; with --overwrite set the old run aside."""
        out, aside = self.out, self.out / ASIDE
        refuse_a_file(out)
        if aside.exists():
            raise RunFolderError(
                f"--out {out}: {aside} holds the files of a run that an --overwrite set aside "
                f"and never put back (its process was stopped before the new run's first "
                f"checkpoint); move its files back into {out} (or delete the folder), then run "
                f"again")
        found = existing_run_files(out) if self.refuse_a_run else []
        if found and not self.overwrite:
            resume = (f"--resume {out / 'checkpoint.pkl'}" if "checkpoint.pkl" in found
                      else "--resume")
            raise RunFolderError(
                f"--out {out} already holds a run ({', '.join(found)}); continue that run with "
                f"{resume}, or give a new --out for this one (or pass --overwrite to replace it)")
        self._make()
        if found:
            aside.mkdir()
            self.aside = aside
            for name in found:
                os.replace(out / name, aside / name)

    def _make(self):
        """Create the folder, remembering which folders were made, and write a file in it."""
        self.created = missing_folders(self.out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.out):
                pass
        except OSError as error:
            self.abandon()
            raise RunFolderError(f"--out {self.out}: cannot write there ({type(error).__name__}: "
                                 f"{error.strerror or error}); choose a folder you can write "
                                 f"to") from None

    @property
    def replacing(self):
        """True while an old run waits aside to be put back if this one fails."""
        return self.aside is not None

    def keep(self):
        """The run has written its first checkpoint: the replaced run's files can go."""
        self.kept = True
        if self.aside is not None:
            shutil.rmtree(self.aside)
            self.aside = None

    def abandon(self):
        """The run stopped before its first checkpoint: put back the run it was to replace,
        and remove what it made."""
        if self.kept:
            return
        if self.out.is_dir():
            for name in RUN_FILES:   # half-written files, and whole ones of the failed run
                temporary(self.out / name).unlink(missing_ok=True)
                if self.aside is not None and not (self.aside / name).exists():
                    (self.out / name).unlink(missing_ok=True)
        if self.aside is not None:
            for path in self.aside.iterdir():
                os.replace(path, self.out / path.name)
            self.aside.rmdir()
            self.aside = None
        remove_empty(self.created)
        self.created = []
