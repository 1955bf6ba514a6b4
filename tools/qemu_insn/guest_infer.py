"""Guest side of avx2_baseline.py: one zoo model on one runner, REPS inferences inside a marked region.
Usage: python guest_infer.py MODEL RUNNER REPS     RUNNER: xnnpack | builtin | native-ISA (e.g. native-avx2)
Prints one JSON line: the runner, the native ISA in effect, and whether every output byte equals the zoo's
expected outputs (the interpreter's built-in kernels at build time) on the model's seeded inputs, and the
outputs' sha256 (to compare an emulated run with a native one)."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from region import mark

from edge_maas import zoo

name, runner, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
blob = zoo.model_bytes(name)
xs, ys = zoo.expected(name)
isa = None
if runner.startswith("native-"):
    from edge_maas.kernels import executor as ex

    from edge_maas.backends.native import NativeBackend

    isa = ex.set_isa(runner.removeprefix("native-"))
    b = NativeBackend(blob, threads=1)
else:
    from edge_maas.backends.litert import LiteRTBackend

    b = LiteRTBackend(blob, threads=1, xnnpack=runner == "xnnpack")
feeds = [{b.inputs[0].name: x[None]} for x in xs]
# every seeded input once: the bytes check, and the warm-up (XNNPACK packs its weights on the first runs)
outs = [next(iter(b.run(f).values())) for f in feeds]
diff = int(sum(np.count_nonzero(o.reshape(-1) != y.reshape(-1)) for o, y in zip(outs, ys)))
mark(1)
for i in range(reps):
    b.run(feeds[i % len(feeds)])
mark(2)
print(json.dumps({"model": name, "runner": runner, "isa": isa, "reps": reps, "bytes_off": diff,
                  "bytes": int(sum(o.size for o in outs)),
                  "sha256": hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest()}))  # fmt: skip
