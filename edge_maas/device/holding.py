"""Which submodels of a service a device holds when its budget is smaller than the service."""

from __future__ import annotations

from edge_maas.service import ServiceManifest


def hold_plan(manifest: ServiceManifest, budget: int | None) -> set[str]:
    """Names of the submodels to hold within ``budget`` bytes of submodel files (None: every one).

    Whole tasks first, in the manifest's order: a task whose submodels all fit (with what is already held)
    runs here and keeps working without a worker.  Then the smallest of the rest while they fit: a small head
    held here saves a round trip, and a heavy backbone that does not fit is what a worker is for.  What is not
    held runs on a worker (edge_maas.backends.remote.RemoteSubmodel)."""
    if budget is None:
        return {s.name for s in manifest.submodels}
    held: set[str] = set()
    used = 0

    def fits(names: set[str]) -> bool:
        return used + sum(s.size for s in manifest.submodels if s.name in names - held) <= budget

    for t in manifest.tasks:
        plan = {s.name for s in manifest.task_plan([t.name])}
        if fits(plan):
            used += sum(s.size for s in manifest.submodels if s.name in plan - held)
            held |= plan
    for s in sorted(manifest.submodels, key=lambda s: (s.size, s.name)):
        if s.name not in held and fits({s.name}):
            held.add(s.name)
            used += s.size
    return held
