"""Who may import whom (DESIGN.md): compiler -> backends -> passes -> ir, never back up;
backends do not import each other. Checked on the source, imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> the snnc packages its modules may import
ALLOWED = {
    "ir": ("snnc.ir",),
    "passes": ("snnc.ir", "snnc.passes"),
    "backends/sim": ("snnc.ir", "snnc.passes", "snnc.backends.sim"),
    "backends/c": ("snnc.ir", "snnc.passes", "snnc.backends.c"),
    "backends/place": ("snnc.ir", "snnc.passes", "snnc.backends.place"),
    "backends/nir": ("snnc.ir", "snnc.passes", "snnc.backends.nir"),
}


def _snnc_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "snnc"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "snnc":
            found.add(node.module)
    return found


@pytest.mark.parametrize("folder", list(ALLOWED))
def test_imports_point_down(folder):
    files = sorted((ROOT / folder).glob("*.py"))
    assert files
    for f in files:
        for mod in _snnc_imports(f):
            assert any(mod == a or mod.startswith(a + ".") for a in ALLOWED[folder]), (
                f"{f.relative_to(ROOT)} imports {mod}")


def test_the_shared_rules_and_the_runtime_stand_alone():
    """ir/semantics.py imports nothing of snnc (it is copied into OUT), and the runtime
    imports snnc only to find it inside the package."""
    assert _snnc_imports(ROOT / "ir" / "semantics.py") == set()
    assert _snnc_imports(ROOT / "backends" / "sim" / "runtime.py") == {"snnc.ir"}
