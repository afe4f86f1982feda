"""runvm's guest: the kernel, initramfs and read-only OS image each container's VM boots from.

`runtime.guest.build.ensure()` builds them (scripts/setup-host calls it); `build.artifacts()` finds them.
"""
