"""A stack that is a machine of its own (stacks/*.yaml, kind vm): its disk image, booting it, and the suite's run
inside it.

The suite's host-side oracles read the host the containers run on (cgroup files, /proc, links, mounts, leftovers),
so a stack on another host is observed from inside that host: the same suite, at the same commit, runs there on
the host's own dockerd and writes an ordinary run directory, which comes back as a shard and merges into the
matrix like any other host's. Here the other host is a QEMU virtual machine (the cgroup v2 host this machine
cannot boot); a real machine reached over ssh is the same recipe with a different transport (docs/stacks.md)."""
