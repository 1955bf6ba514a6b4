"""Instruction-set selection: EDGE_MAAS_ISA forces the portable path for a process; a
wrong value is refused with a message; paths never exceed what the CPU has."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from edge_maas.kernels import executor as ex

PROBE = "from edge_maas.kernels import executor as ex; print(ex.isa())"


def _isa_in_subprocess(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_MAAS_ISA"}
    if value is not None:
        env["EDGE_MAAS_ISA"] = value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False)


def test_environment_variable_forces_portable():
    res = _isa_in_subprocess("portable")
    assert res.returncode == 0 and res.stdout.strip() == "portable"
    assert _isa_in_subprocess(None).stdout.strip() == ex.best_isa()


def test_bad_environment_value_is_refused():
    res = _isa_in_subprocess("sse9")
    assert res.returncode != 0 and "unknown instruction set 'sse9'" in res.stderr


def test_set_isa_never_exceeds_the_cpu():
    before = ex.isa()
    try:
        assert ex.set_isa("portable") == "portable"
        assert ex.set_isa("avx2") == ex.best_isa()
        with pytest.raises(ValueError, match="unknown instruction set"):
            ex.set_isa("neon")
    finally:
        ex.set_isa(before)
