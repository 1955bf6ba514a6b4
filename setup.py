"""Builds the Cython kernels in kernels/ as the package edge_maas.kernels.

Packaging follows scikit-learn's pattern: the .pyx sources and their C headers
sit beside the pure-numpy references; `pip install .` (or -e .) compiles them.
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
KERNELS = sorted(p.stem for p in (HERE / "kernels").glob("*.pyx"))

# No FMA contraction: float rounding must match the interpreter bit for bit.
extra = ["-O3", "-fno-strict-aliasing", "-ffp-contract=off"]
if os.environ.get("EDGE_MAAS_NATIVE_ARCH", "0") == "1":
    extra.append("-march=native")

# Hand-written C (kernels/c/) is linked into the executor; each C file is one op.
C_SOURCES = {
    "executor": sorted(str(p.relative_to(HERE)) for p in (HERE / "kernels" / "c").glob("*.c")),
}
# OpenMP gives the kernels their optional intra-op threads (default 1).
omp = [] if os.environ.get("EDGE_MAAS_OPENMP", "1") == "0" else ["-fopenmp"]

# The zoo models the main job needs (`edge-maas demo` runs the digits MLP) ship in the wheel as the data-only package
# edge_maas.zoo_models, read straight from tests/models at build time: no second copy in git.  edge_maas/zoo.py
# reads edge_maas/zoo_models when present (a wheel) and tests/models otherwise (a checkout, `pip install -e .`).
ZOO_PACKAGED = ["mlp_digits"]
ZOO_FILES = ["zoo.json", *(f"{n}{ext}" for n in ZOO_PACKAGED for ext in (".tflite", ".expected.npz"))]

extensions = [
    Extension(
        f"edge_maas.kernels.{name}",
        [f"kernels/{name}.pyx", *C_SOURCES.get(name, [])],
        include_dirs=["kernels", "kernels/c"],
        extra_compile_args=extra + omp,
        extra_link_args=omp,
    )
    for name in KERNELS
]

setup(
    # kernels/c is a data-only package (the C sources ship for builds from the installed tree)
    packages=find_packages(include=["edge_maas", "edge_maas.*"])
    + ["edge_maas.kernels", "edge_maas.kernels.ref", "edge_maas.kernels.c", "edge_maas.zoo_models"],
    package_dir={"edge_maas.kernels": "kernels", "edge_maas.kernels.ref": "kernels/ref",
                 "edge_maas.kernels.c": "kernels/c", "edge_maas.zoo_models": "tests/models"},
    package_data={"edge_maas.kernels": ["*.h", "*.pyx"], "edge_maas.kernels.c": ["*.h", "*.c"],
                  "edge_maas.zoo_models": ZOO_FILES},
    # Cython's generated C is in the sdist (built from it without Cython); the wheel has the compiled modules
    exclude_package_data={"edge_maas.kernels": [f"{name}.c" for name in KERNELS]},
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}, include_path=["kernels"]),
    zip_safe=False,
)
