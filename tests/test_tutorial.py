"""docs/tutorial.md followed as a new user would: every ```bash block marked `<!-- tutorial:run -->` runs, in order,
as one bash session (its variables and background daemons carry over, as in the reader's one terminal) from the
checkout's root, with the checkout's .venv activated by the tutorial itself, HOME in a temp folder (the tutorial
works in ~/edge-maas-tutorial), and a real Mosquitto that the tutorial starts, on a free port given through the
variables the tutorial reads (BROKER_PORT, HTTP_PORT).

Proves: each step exits 0 (bash -e; a step that is meant to fail says so with `|| echo`), within a time limit; and
the outputs the tutorial shows as its results are there (the digit's class over MQTT, the SDK and HTTP, the
complete rollout, the rollback, the offloaded answer and the error once the worker is gone, the daemons offline at
the end).  Every process the script started is killed afterwards, also when a step fails or hangs.  Also: every
file or folder that README.md and docs/*.md name by a repository path exists (no dangling references)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from edge_maas.transport.local_broker import MOSQUITTO, free_port

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
RUN_BLOCK = re.compile(r"<!-- tutorial:run -->\s*\n```bash\n(.*?)\n```", re.DOTALL)
TIMEOUT_S = 180  # the whole tutorial: about 40 s on a 2-core machine shared with other jobs


def tutorial_blocks() -> list[str]:
    return RUN_BLOCK.findall(TUTORIAL.read_text())


def test_tutorial_has_runnable_blocks_in_order():
    """The markers are where the test expects them: setup excluded, the flow's steps all included."""
    text = "\n".join(tutorial_blocks())
    for step in (
        "keys new",
        "split",
        "head train",
        "registry publish",
        "registry serve",
        "edge-maas device",
        "--group lab",
        "edge-maas infer",
        "python app.py",
        "curl",
        "registry rollback",
        "edge-maas worker",
        "--metrics-port",
        "--log-format json",
    ):
        assert step in text, f"no tutorial:run block runs {step!r}"
    assert "setup.sh" not in text  # installing is not re-run by the test


@pytest.mark.slow
def test_tutorial_runs_verbatim(tmp_path):
    venv = ROOT / ".venv"
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tutorial activates the checkout's .venv, and this checkout has none (scripts/setup.sh)")
    has_http = [venv / "bin" / "python", "-c", "import fastapi, uvicorn"]
    if subprocess.run(has_http, check=False, capture_output=True).returncode:
        pytest.skip("the tutorial's HTTP step needs edge_maas[http] in .venv (scripts/setup.sh litert,http)")
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (installs it from Debian's packages)")
    blocks = tutorial_blocks()
    # one script; a marker line before each block says which step failed; on exit (any exit) every background job
    # is killed, so a failing step leaves no daemon behind
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, block in enumerate(blocks, 1):
        script += [f"echo '### tutorial step {i}/{len(blocks)}'", block]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # a new user's shell: no venv active, a normal user's PATH (no /usr/sbin), HOME of its own; free ports
    env.update(
        HOME=str(tmp_path),
        PATH="/usr/local/bin:/usr/bin:/bin",
        BROKER_PORT=str(free_port()),
        HTTP_PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    finally:
        try:  # whatever the script left (its own group: daemons started with &), mosquitto included
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    took = time.monotonic() - t0
    # the daemons' own words (a daemon that exited at start says why only in its log)
    logs = "".join(f"\n--- {p.name} (end)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                   for p in sorted((tmp_path / "edge-maas-tutorial" / "logs").glob("*.log")))  # fmt: skip
    assert not timed_out, f"the tutorial did not finish within {TIMEOUT_S} s; its output:\n{out[-6000:]}{logs}"
    assert proc.returncode == 0, f"the tutorial failed (exit {proc.returncode}); its output:\n{out[-6000:]}{logs}"
    expected = [
        "public key registry.pub",
        "top-1: 8",  # the split model, locally
        "task ge5 (backbone reused), version 1 -> 2",
        "published digits@2",
        "serving the Open Inference Protocol on http://127.0.0.1:",
        "complete at stage 2/2, 2 succeeded, 0 failed",
        "digits/StatefulPartitionedCall_1:0: int8[1, 10], top-1 index 8",  # CLI over MQTT
        "answered by cam-2 running version 2",
        "cam-1 answered with version 2: {'digits/StatefulPartitionedCall_1:0': 8, 'ge5/out_0': 1}",  # the SDK
        '{"ready":true}',
        '"model_name":"digits.ge5","model_version":"2"',  # HTTP
        '"error":"unknown model \'nope\'',
        "cam-1 rolled back to mlp_digits@1",
        "(1 submodel(s) on workers)",
        "answered by cam-3 running version 2",  # offloaded
        "cannot run: it is not held here and no worker is online",
        "exit status 2",
        'edge_maas_device_requests_total{device="cam-2",outcome="ok",task="ge5"} 1.0',  # metrics
        '"message": "cam-2: restored digits@2 from the cache"',  # a JSON log line
    ]
    missing = [s for s in expected if s not in out]
    assert not missing, f"missing from the tutorial's output: {missing}\n{out[-6000:]}"
    final = out.rsplit("### tutorial step", 1)[1]
    for device in ("cam-1", "cam-2", "cam-3"):  # stopped cleanly: each published its offline report
        assert re.search(rf"^{device} +offline", final, re.MULTILINE), final
    print(f"tutorial ran in {took:.1f} s")


# a repository path in backticks or a markdown link: starts with a top-level folder or file of the checkout
_PATHS = re.compile(
    r"`((?:docs|edge_maas|tests|scripts|firmware_configs|deploy|kernels|bench|tools|build_backend)"
    r"/[A-Za-z0-9_./*-]+|README\.md|pyproject\.toml|setup\.py)`|\]\(([^)#:]+)\)"
)


def test_docs_name_only_files_that_exist():
    """README.md and docs/*.md: every repository path they name (in backticks, or as a relative link) exists, and
    nothing points outside the repository (../shared/..., absolute paths to a work folder)."""
    bad = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in _PATHS.finditer(text):
            if m.group(1):
                path = m.group(1).rstrip(".")
                if path.startswith("edge_maas/zoo_models"):  # made at wheel build time (setup.py ZOO_PACKAGED)
                    continue
                ok = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            else:
                ok = (doc.parent / m.group(2)).exists()
            if not ok:
                bad.append(f"{doc.relative_to(ROOT)}: {m.group(0)}")
        bad += [f"{doc.relative_to(ROOT)}: {m}" for m in re.findall(r"\.\./shared/\S+|/work/main\S*", text)]
    assert not bad, "dangling references:\n" + "\n".join(bad)
