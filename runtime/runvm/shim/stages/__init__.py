"""The vm-shim's set-up (vm_setup.py) in stages, one module each, with typed inputs and outputs. Kept empty:
the resident shim imports stages.handover, and nothing else of set-up may come with it."""
