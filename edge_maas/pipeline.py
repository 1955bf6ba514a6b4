"""Run shards in order, passing boundary tensors by name."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_maas.backends import Backend, TensorSpec, check_inputs, make_stage_backend
from edge_maas.errors import ManifestError
from edge_maas.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass
class Stage:
    index: int
    backend: Backend
    kind: str  # backend name, for reports
    _batched: dict[int, Backend | None] = field(default_factory=dict, repr=False)

    def batched(self, n: int) -> Backend | None:
        """The backend resized to batch n, built once per n; None when the model cannot batch."""
        if n not in self._batched:
            self._batched[n] = self.backend.batched(n) if n > 1 else self.backend
        return self._batched[n]

    def run_batch(self, feed: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Run n samples stacked on axis 0: in one call when the backend batches, else one by one.
        Batches are padded to a power of two, so a stage keeps at most log2(max batch) + 1 sizes."""
        size = 1 << (n - 1).bit_length()
        b = self.batched(size)
        if b is not None:
            if size != n:  # zero rows: samples are independent, the padding is dropped below
                feed = {k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)]) for k, v in feed.items()}
            return {k: v[:n] for k, v in b.run(feed).items()}
        outs = [self.backend.run({k: v[i : i + 1] for k, v in feed.items()}) for i in range(n)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


class Pipeline:
    """Stages share one tensor namespace: each reads its inputs by name from what
    the model inputs and earlier stages produced, so skip connections that jump
    over several stages need no special handling."""

    def __init__(self, stages: Sequence[Stage], inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        self.stages = list(stages)
        self.inputs = inputs
        self.outputs = outputs
        self._suffixes: dict[int, Pipeline] = {}

    @classmethod
    def from_manifest(
        cls,
        manifest_path: str | Path,
        backend: str | Sequence[str] = "litert",
        **backend_options,
    ) -> Pipeline:
        """Load a split model; ``backend`` is one name for all stages or one per stage ("native": natively
        where native has every op of the stage, else on the interpreter, logged; "native-only": strictly).

        Every shard is checked against the manifest's size and sha256 before the
        backend sees it."""
        path = Path(manifest_path)
        manifest = Manifest.load(path)
        return cls.from_loaded(manifest, path.parent, backend, **backend_options)

    @classmethod
    def from_loaded(cls, manifest: Manifest, directory: Path, backend: str | Sequence[str] = "litert", **options):
        return cls.from_reader(manifest, lambda shard: manifest.read_shard(directory, shard), backend, **options)

    @classmethod
    def from_reader(cls, manifest: Manifest, read, backend: str | Sequence[str] = "litert", **options):
        """Build from ``read(shard) -> bytes``, which must return verified bytes (read_shard,
        or a content-addressed cache checked against the shard's sha256)."""
        kinds = [backend] * len(manifest.shards) if isinstance(backend, str) else list(backend)
        if len(kinds) != len(manifest.shards):
            raise ManifestError(f"{len(kinds)} backends given for {len(manifest.shards)} shards")
        stages = []
        for shard, kind in zip(manifest.shards, kinds):
            b, kind = make_stage_backend(kind, read(shard), f"stage {shard.index} ({shard.file})", **options)
            declared = tuple((t.name, t.shape, t.dtype) for t in shard.inputs)
            actual = tuple((s.name, s.shape, s.dtype) for s in b.inputs)
            if declared != actual:
                raise ManifestError(f"shard {shard.index} inputs {actual} do not match the manifest's {declared}")
            stages.append(Stage(shard.index, b, kind))
        specs = lambda ts: tuple(TensorSpec(t.name, t.shape, t.dtype) for t in ts)
        return cls(stages, specs(manifest.inputs), specs(manifest.outputs))

    def run(self, inputs: Mapping[str, np.ndarray], trace: bool = False) -> dict[str, np.ndarray]:
        """Model outputs by name; with ``trace``, every boundary tensor too."""
        env = self.run_prefix(inputs, len(self.stages))
        return env if trace else {s.name: env[s.name] for s in self.outputs}

    def run_prefix(self, inputs: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
        """Run stages 0..k-1; every tensor known so far, by name (what suffix(k) may read)."""
        check_inputs(self.inputs, inputs)
        env: dict[str, np.ndarray] = dict(inputs)
        for stage in self.stages[:k]:
            env.update(stage.backend.run({s.name: env[s.name] for s in stage.backend.inputs}))
        return env

    def run_batch(self, batch: Sequence[Mapping[str, np.ndarray]],
                  stage_s: list[float] | None = None) -> list[dict[str, np.ndarray]]:  # fmt: skip
        """Run several requests as one batch (stacked on the leading dimension of size 1); stages
        whose backend cannot batch run the samples one by one.  Outputs per request, in order;
        with ``stage_s``, the seconds each stage took are appended to it."""
        for x in batch:
            check_inputs(self.inputs, x)
        n = len(batch)
        if not self._batchable:
            return [self.run(x) for x in batch]
        env = {s.name: np.concatenate([x[s.name] for x in batch]) for s in self.inputs}
        for st in self.stages:
            t0 = time.perf_counter()
            env.update(st.run_batch({s.name: env[s.name] for s in st.backend.inputs}, n))
            if stage_s is not None:
                stage_s.append(time.perf_counter() - t0)
        return [{s.name: env[s.name][i : i + 1].copy() for s in self.outputs} for i in range(n)]

    @functools.cached_property
    def _batchable(self) -> bool:
        """Every tensor has a leading batch dimension of 1 (fixed once the stages are)."""
        specs = [*self.inputs, *(s for st in self.stages for s in (*st.backend.inputs, *st.backend.outputs))]
        return all(s.shape[:1] == (1,) for s in specs)

    def suffix(self, k: int) -> Pipeline:
        """Stages k.. as a pipeline of their own: its inputs are every tensor those stages read
        that they do not produce (boundary tensors, skip connections, model inputs)."""
        if not 0 <= k < len(self.stages):
            raise ManifestError(f"no stage {k}: the pipeline has {len(self.stages)}")
        if k in self._suffixes:
            return self._suffixes[k]
        produced: set[str] = set()
        needed: dict[str, TensorSpec] = {}
        for st in self.stages[k:]:
            for spec in st.backend.inputs:
                if spec.name not in produced:
                    needed.setdefault(spec.name, spec)
            produced.update(spec.name for spec in st.backend.outputs)
        suffix = self._suffixes[k] = Pipeline(self.stages[k:], tuple(needed.values()), self.outputs)
        return suffix

    def close(self) -> None:
        for s in self.stages:
            s.backend.close()
