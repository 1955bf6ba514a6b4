"""PEP 517 backend: setuptools, plus TFLite's schema bindings built into the package.

edge_maas reads and writes .tflite flatbuffers with the flatc-generated Python bindings of TFLite's schema.fbs
(with flatc's object API).  They are built into the package as ``edge_maas/tflite/_schema_generated.py``, so an
installed edge_maas needs neither ai-edge-litert nor TensorFlow to split, inspect, compose or run natively: boards
on numpy<2 with tflite-runtime get all of it.  A checkout has no such file yet; its first build copies it from
ai-edge-litert, which this backend then asks for as a build requirement (in pip's isolated build env, not in the
environment edge_maas is installed into).  An sdist carries the file, so a build from the sdist (e.g. on a board)
needs nothing beyond setuptools and Cython.  Delete the file to take it again.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the PEP 517 hooks not redefined here, unchanged

GENERATED = Path(__file__).resolve().parent.parent / "edge_maas" / "tflite" / "_schema_generated.py"
SOURCE_REQUIREMENT = "ai-edge-litert>=1.2"
# (distribution, top-level package, path of flatc's generated module inside it); the first one present is taken
SOURCES = [
    ("ai-edge-litert", "ai_edge_litert", "schema_py_generated.py"),
    ("tflite-micro", "tflite_micro", "tensorflow/lite/micro/python/schema_py_generated.py"),
    ("tensorflow", "tensorflow", "lite/python/schema_py_generated.py"),
]


def schema_bindings() -> None:
    """Writes edge_maas/tflite/_schema_generated.py unless present.

    Raises SystemExit naming the fix when no installed package ships the module with the object API.
    """
    if GENERATED.exists():
        return
    for dist, package, rel in SOURCES:
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            continue
        src = Path(next(iter(spec.submodule_search_locations))) / rel
        if not src.is_file() or "class ModelT" not in (text := src.read_text()):
            continue  # without the object API edge_maas cannot write models
        header = (f"# TFLite schema bindings (flatc output with the object API), copied at build time from {dist} "
                  f"{importlib.metadata.version(dist)}: {rel}.\n"
                  "# Apache-2.0, as TFLite's schema.  Do not edit: delete this file to take it again.\n")
        GENERATED.write_text(header + text)
        print(f"edge_maas: TFLite schema bindings taken from {dist}")
        return
    raise SystemExit("edge_maas: no TFLite schema bindings to build in: install ai-edge-litert in the build "
                     "environment (pip does so for a checkout, through build_backend/), or build from the sdist")


def _extra() -> list[str]:
    return [] if GENERATED.exists() else [SOURCE_REQUIREMENT]


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + _extra()


def get_requires_for_build_sdist(config_settings=None):
    return _setuptools.get_requires_for_build_sdist(config_settings) + _extra()


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + _extra()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    schema_bindings()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    schema_bindings()
    return _setuptools.build_sdist(sdist_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    schema_bindings()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
