"""The host-side processes that stand in for a container's processes: the vm-shim (one per container, owns
QEMU) and the exec-shim (one per `docker exec`)."""
