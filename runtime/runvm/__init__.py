"""runvm: an OCI runtime with runc's command line that runs each container in its own QEMU VM."""

VERSION = "0.1.0"
DEFAULT_ROOT = "/run/runvm"
