"""One run of the suite: the daemon, the runtimes under test, the run directory, the results store."""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from harness import cleanup, labels, paths, provenance, registry, runtime_data, runtimes, stack_data, stacks
from harness.results import ResultsStore
from harness.setup import images


@dataclass
class Options:
    baseline: str = "runc"
    runtimes: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    repeat: int = 1
    examples: int = 4
    slow_examples: int = 2
    slow: tuple[str, ...] | None = None
    """Runtimes given the small example budget; by default those their runtimes/ file calls slow."""
    profile: str = "fast"
    stack: str | None = None
    """A stack from stacks/ (None: the host's own dockerd)."""

    def budget(self, runtime: str) -> int:
        slow = runtime in (self.slow if self.slow is not None else runtime_data.slow())
        if self.profile == "deep":
            return 10 if slow else 25
        return self.slow_examples if slow else self.examples


class Session:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stack = stack_data.get(options.stack) if options.stack else stack_data.host_stack()
        self.endpoint = stacks.endpoint(self.stack)
        try:
            self.client = self.endpoint.client(timeout=180)
            info = self.client.info()
            version = self.client.version()
        except docker.errors.DockerException as e:
            raise SystemExit(f"vmparity: cannot reach the {self.stack.name} stack's Docker daemon at "
                             f"{self.endpoint.docker_url} ({e}); run scripts/setup-host (or ./run tests) first"
                             ) from e
        self.available = runtimes.discover(info, self.endpoint.launcher)
        self.registry = registry.load()
        self.targets = runtimes.select(self.available, options.runtimes, options.baseline, runtime_data.opt_in())
        self.baseline = options.baseline
        if options.run_dir is not None:
            self.run_dir = options.run_dir.resolve()
            self.run_id = self.run_dir.name
        else:
            self.run_id = labels.new_run_id()
            self.run_dir = paths.RUNS / self.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock = cleanup.RunLock(self.run_id)
        atexit.register(self.lock.release)
        self.leftovers = cleanup.remove_leftovers(self.client, keep_run=self.run_id)
        try:
            self.image = images.IMAGE + ":latest"
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound as e:
            raise SystemExit(f"vmparity: the test image {self.image} is missing; run scripts/setup-host") from e
        opts: dict[str, Any] = {
            "baseline": self.baseline, "targets": self.targets, "repeat": options.repeat,
            "examples": options.examples, "slow_examples": options.slow_examples, "profile": options.profile,
        }
        self.provenance = provenance.collect(info, version, {t: self.available[t] for t in self.targets}, opts,
                                             self.endpoint)
        self.provenance["leftovers_removed_at_start"] = self.leftovers
        self.store = ResultsStore(self.run_dir, self.run_id, self.baseline, self.targets, self.provenance)
        self.exec_root = self.endpoint.exec_root
        self.baseline_cache: dict[tuple[str, str, int], Any] = {}
        self.verdicts: list[tuple[str, str, str, str | None, str]] = []

    def finish(self) -> None:
        self.store.finish(provenance.now(), provenance.suite_commit())
        with contextlib.suppress(OSError):
            latest = paths.RUNS / "latest"
            latest.unlink(missing_ok=True)
            latest.symlink_to(self.run_dir)
