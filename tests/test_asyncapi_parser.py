"""docs/asyncapi.json against the official AsyncAPI parser (@asyncapi/parser from the npm registry, pinned in
tools/asyncapi-check/package-lock.json): the tools operators point at it (generators, Studio) run that parser.

The first run installs the parser with `npm ci` into tools/asyncapi-check/node_modules (git-ignored; ~15 s)."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_maas.transport.asyncapi import document

ROOT = Path(__file__).parent.parent
CHECK = ROOT / "tools" / "asyncapi-check"
DOC = ROOT / "docs" / "asyncapi.json"
# The one warning left: info.contact (asyncapi-info-contact): the project publishes no contact to put there.
MAX_WARNINGS = 1


def _installed_matches_lock() -> bool:
    """True when node_modules holds the parser version package-lock.json pins."""
    lock = json.loads((CHECK / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/@asyncapi/parser"]["version"]
    have = CHECK / "node_modules" / "@asyncapi" / "parser" / "package.json"
    return have.is_file() and json.loads(have.read_text())["version"] == want


@pytest.fixture(scope="module")
def parse(tmp_path_factory):
    """parse(doc: dict) -> the parser's report {"parser", "valid", "diagnostics": [{code, message, path,
    severity}]} (severity 0 error, 1 warning, 2 info, 3 hint)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        pytest.skip("node and npm are needed to run the official AsyncAPI parser (@asyncapi/parser)")
    # a lock: two pytest runs in one tree must not both run `npm ci` (it deletes node_modules first)
    with open(tmp_path_factory.getbasetemp().parent / "asyncapi-check.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed_matches_lock():
            # --ignore-scripts: the parser needs no install scripts (one dependency's only phones home)
            env = {**os.environ, "SCARF_ANALYTICS": "false"}
            cmd = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
            r = subprocess.run(cmd, check=False, cwd=CHECK, env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, f"npm ci in {CHECK} failed:\n{r.stdout}\n{r.stderr}"
    out = tmp_path_factory.mktemp("asyncapi")

    def run(doc: dict) -> dict:
        path = out / "asyncapi.json"
        path.write_text(json.dumps(doc))
        r = subprocess.run([node, str(CHECK / "check.js"), str(path)], check=False, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    return run


def _by_severity(report: dict, severity: int) -> list[str]:
    return [f"{d['code']} at {'/'.join(map(str, d['path']))}: {d['message']}"
            for d in report["diagnostics"] if d["severity"] == severity]  # fmt: skip


@pytest.mark.slow  # ~4 s a test once installed; the first run's `npm ci` takes ~15 s more
def test_committed_document_passes_the_official_parser(parse):
    """The committed docs/asyncapi.json: no errors (before the fix: 16 unresolved `#/$defs/...` refs), and at most
    MAX_WARNINGS warnings (before: 25, no servers, operationIds or messageIds)."""
    report = parse(json.loads(DOC.read_text()))
    assert _by_severity(report, 0) == [] and report["valid"], f"parser {report['parser']}: {_by_severity(report, 0)}"
    warnings = _by_severity(report, 1)
    assert len(warnings) <= MAX_WARNINGS, "\n".join(warnings)


@pytest.mark.slow
def test_the_parser_check_bites_on_a_broken_ref(parse):
    """A copy with one nested model's ref in pydantic's per-schema form (the original bug) is an error."""
    doc = copy.deepcopy(json.loads(DOC.read_text()))
    stages = doc["components"]["schemas"]["WorkerStatus"]["properties"]["stages"]["items"]
    assert stages == {"$ref": "#/components/schemas/StageLatency"}
    stages["$ref"] = "#/$defs/StageLatency"
    report = parse(doc)
    errors = [d for d in report["diagnostics"] if d["severity"] == 0]
    assert not report["valid"]
    assert [(d["code"], d["message"]) for d in errors] == [("invalid-ref", "'#/$defs/StageLatency' does not exist")]


def _keys(node, where=""):
    """(path, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield where, k, v
            yield from _keys(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _keys(v, f"{where}/{i}")


def test_every_ref_resolves_inside_the_document():
    """Without Node too: no schema keeps a `$defs` of its own, and every `$ref` names a node of the document."""
    doc = document()
    assert [where for where, k, _ in _keys(doc) if k == "$defs"] == []
    refs = [(where, v) for where, k, v in _keys(doc) if k == "$ref"]
    assert len(refs) > 20
    for where, ref in refs:
        assert ref.startswith("#/"), (where, ref)
        node = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"{where}: {ref} does not resolve"
            node = node[part]
