"""Where things live, in one place so scripts, tests and the CLI agree."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
REPORTS = REPO / "reports"
RUNS = REPORTS / "runs"
REFERENCE = REPORTS / "reference"
DOCS = REPO / "docs"
LIMITATIONS_MD = DOCS / "limitations.md"
REGISTRY = REPO / "limitations.yaml"
RUNTIMES = REPO / "runtimes"
"""One YAML file per runtime the suite can test (harness/runtime_data.py)."""
STACKS = REPO / "stacks"
"""One YAML file per Docker stack the matrix can be observed on (harness/stack_data.py)."""
SUITE_SNAPSHOT = REPO / ".vmparity-suite.json"
"""In a copy of the suite made for another machine (harness/vmhost), the commit and tree state it was copied at."""
TEMPLATES = REPO / "harness" / "templates"
SCHEMAS = REPO / "harness" / "schemas"

DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKERD_LOG = Path("/var/log/vmparity-dockerd.log")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
DOCKER_SOCK = Path("/var/run/docker.sock")
STATE = Path("/var/lib/vmparity")
"""Host state owned by vmparity (disposable daemons' roots, the guest build cache)."""
DOCKER_EXEC_ROOT = Path("/var/run/docker")
"""dockerd's --exec-root: runtimes keep container state under runtime-<name>/moby there."""
