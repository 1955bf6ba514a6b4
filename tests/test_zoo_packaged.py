"""Installed from a wheel, the zoo is read from the package data setup.py ships (edge_maas/zoo_models), not from a
tests/ folder that a wheel does not have.  The full wheel build + fresh-venv demo is scripts/wheel_smoke.sh."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import MODELS

ROOT = Path(__file__).resolve().parent.parent


def _packaged_files() -> list[str]:
    """setup.py's ZOO_FILES, evaluated without running setup.py (it needs Cython and builds)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    env: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("ZOO_PACKAGED", "ZOO_FILES"):
            exec(compile(ast.Module([node], []), "setup.py", "exec"), env)  # noqa: S102 - our own setup.py
    return env["ZOO_FILES"]


def test_wheel_ships_what_the_demo_needs():
    files = _packaged_files()
    assert {"zoo.json", "mlp_digits.tflite", "mlp_digits.expected.npz"} <= set(files)
    assert all((MODELS / f).is_file() for f in files)


def test_zoo_reads_package_data_in_a_wheel_layout(tmp_path):
    # site-packages as a wheel lays it out: the package and its zoo_models, no tests/ beside it
    pkg = tmp_path / "site" / "edge_maas"
    (pkg / "zoo_models").mkdir(parents=True)
    for f in ("__init__.py", "zoo.py"):
        shutil.copy(ROOT / "edge_maas" / f, pkg / f)
    for f in _packaged_files():
        shutil.copy(MODELS / f, pkg / "zoo_models" / f)
    code = ("import json, hashlib; from edge_maas import zoo; x, y = zoo.expected('mlp_digits'); "
            "print(json.dumps([str(zoo.MODELS), zoo.names(), hashlib.sha256(zoo.model_bytes('mlp_digits')).hexdigest(),"
            " x.shape[0]]))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(pkg.parent)!r}); {code}"],
                         check=False, capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    models, names, sha, n = json.loads(out.stdout)
    assert models == str(pkg / "zoo_models")
    assert names == ["mlp_digits"]  # zoo.json lists the whole zoo; only what shipped is offered
    assert sha == json.loads((MODELS / "zoo.json").read_text())["mlp_digits"]["sha256"] == hashlib.sha256(
        (MODELS / "mlp_digits.tflite").read_bytes()).hexdigest()
    assert n > 0
