"""The package: what ``import sobolev`` loads, the library never importing the harness, and every
exported name resolving (the optional parts lazily)."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import sobolev

ROOT = Path(__file__).resolve().parents[1]
#: dependencies of the harness, the tests or optional parts, which ``import sobolev`` must not load
NOT_ON_IMPORT = (
    "matplotlib",
    "click",
    "sklearn",
    "findiff",
    "sympy",
    "scipy",
    "PIL",
    "sobolev_lab",
)
#: the library's optional parts, loaded on first use
LAZY = ("sobolev.finance", "sobolev.theory")


def _loaded_after(code: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_sobolev_loads_no_optional_dependency_and_no_optional_part():
    loaded = _loaded_after("import sobolev")
    assert "sobolev" in loaded and "torch" in loaded
    tops = {name.split(".")[0] for name in loaded}
    assert [m for m in NOT_ON_IMPORT if m in tops] == []
    assert [m for m in LAZY if m in loaded] == []


def test_no_library_module_imports_the_harness():
    loaded = _loaded_after(
        "import importlib, pkgutil, sobolev\n"
        "for m in pkgutil.walk_packages(sobolev.__path__, 'sobolev.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert {"sobolev.finance", "sobolev.theory", "sobolev.numdiff"} <= loaded  # the walk ran
    assert not any(name.split(".")[0] == "sobolev_lab" for name in loaded)


@pytest.mark.parametrize("name", sobolev.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(sobolev, name) is not None and name in dir(sobolev)


def test_star_import_gives_every_exported_name():
    loaded = _loaded_after("from sobolev import *\nassert fit and numdiff and LossHessian")
    assert {"sobolev.numdiff", "sobolev.curvature", "sobolev.finance"} <= loaded


def test_lazy_parts_are_the_modules_and_unknown_names_are_attribute_errors():
    import sobolev.numdiff
    from sobolev.curvature import LossHessian

    assert sobolev.LossHessian is LossHessian and sobolev.numdiff.__name__ == "sobolev.numdiff"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sobolev.nope


def test_readme_api_example_runs_as_written(tmp_path, monkeypatch):
    """The README's "API in ten lines" block, run with fewer steps inside a temporary directory."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "steps=2000" in code and "sobolev.fit(" in code
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "readme_example.py"
    script.write_text(code.replace("steps=2000", "steps=30"))
    scope = runpy.run_path(str(script))
    history = scope["history"]
    assert history.records[-1]["loss"] < history.records[0]["loss"]
    assert set(scope["terms"]) == {"D0", "D1"}
    assert (tmp_path / "runs" / "mine" / "checkpoint.pt").exists()
