#!/bin/sh
# Used by the Dockerfile's builder stages: make /opt/edge_maas, a venv with the wheels named in /wheels/$1
# (one file name a line, resolved by build.sh), offline.  --without-pip: Debian's python3 has no ensurepip
# (python3-venv); pip runs from its own wheel.  --no-deps: the list is the whole set, so anything it leaves out
# stays out; the import line below fails the build if a daemon needs it after all.  Then tests, caches and
# pip's RECORD files go, and the bytecode is compiled here: the non-root user cannot write __pycache__ at run time.
set -eu
python3 -m venv --without-pip /opt/edge_maas
/opt/edge_maas/bin/python "$(ls /wheels/pip-*.whl)/pip" install -q --no-index --no-deps --no-compile --no-cache-dir \
    $(sed 's|^|/wheels/|' "/wheels/$1")
/opt/edge_maas/bin/python -c "import edge_maas.cli, edge_maas.cli_maas, edge_maas.device.agent, edge_maas.worker.worker, \
edge_maas.registry.service, edge_maas.kernels.executor, edge_maas.backends.native"
sp=/opt/edge_maas/lib/python3.11/site-packages
find "$sp" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
rm -f "$sp"/*.dist-info/RECORD
/opt/edge_maas/bin/python -m compileall -q -j 0 "$sp" >/dev/null
