"""runvm: an OCI runtime with runc's command line that runs each container in its own QEMU VM."""

import sys

# Docker runs runvm four times per `docker run`, each a new interpreter. A dockerd started with
# PYTHONDONTWRITEBYTECODE=1 in its environment would make every one of them compile runvm's sources again
# (~50 ms for create alone), so runvm keeps its bytecode cache whatever the caller's environment says.
sys.dont_write_bytecode = False

VERSION = "0.1.0"
DEFAULT_ROOT = "/run/runvm"
