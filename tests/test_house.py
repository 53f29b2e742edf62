"""A tidy house, checked: names that say what a module holds, nothing imported for nothing,
no builtin hidden from the rest of its file."""
import ast
import builtins
import importlib
import pathlib
import pkgutil

import minran

ROOT = pathlib.Path(minran.__file__).parent


def _modules():
    for info in pkgutil.walk_packages(minran.__path__, "minran."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def test_no_module_defines_a_name_that_hides_a_builtin():
    # shape.py once defined `sum`, so every later `sum(...)` in that file was the op, not
    # Python's; an op may still be *exported* under such a name (F.sum), as numpy does
    hiding = [f"{module.__name__}.{name}" for module in _modules()
              for name, value in vars(module).items()
              if not name.startswith("_") and hasattr(builtins, name)
              and getattr(value, "__module__", None) == module.__name__]
    assert hiding == []


def test_no_module_imports_a_name_it_never_uses():
    unused = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "__init__.py":  # a package's __init__ imports to re-export
            continue
        tree = ast.parse(path.read_text())
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        unused += [f"{path.relative_to(ROOT)}:{line} {name}" for name, line in imported.items()
                   if name not in used]
    assert unused == []


def test_the_multiply_accumulate_counter_is_named_for_what_it_counts():
    from minran import functional as F
    from minran.functional import macs
    assert F.counting_macs is macs.counting_macs
    assert not (ROOT / "functional" / "profile.py").exists()  # it counted MACs, not time
    assert F.sum.__module__ == "minran.functional.shape"


def test_every_mutant_of_the_mutation_pass_still_finds_its_fragment():
    """tools/mutate.py plants each mutant by finding its fragment of source; a fragment that an
    edit changed stops the whole pass, so it is caught here, at the edit."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("mutate", ROOT.parent / "tools" / "mutate.py")
    mutate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutate)
    stale = []
    for m in mutate.MUTANTS:
        try:
            mutate.apply((ROOT.parent / m.path).read_text(), m)
        except SystemExit as error:
            stale.append(str(error).splitlines()[0])
    assert len(mutate.MUTANTS) > 300 and stale == []
