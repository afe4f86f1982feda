"""The VM: QEMU's command line, its process, QMP, the template snapshot, and the accelerator choice."""
