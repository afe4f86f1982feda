"""Small, schema-valid registries and results documents for the report tests (no Docker, no real run)."""

from __future__ import annotations

import copy
from typing import Any

from harness import matrix, schema
from harness.registry import Registry
from harness.runtime_data import RuntimeData

RUNTIMES = {r.name: r for r in (
    RuntimeData("runc", "the baseline", 0), RuntimeData("runvm", "a VM runtime", 10),
    RuntimeData("runsc", "gVisor", 20, link="https://gvisor.dev"), RuntimeData("kata", "not installed here", 40))}
"""The runtimes a synthetic matrix describes, in place of runtimes/*.yaml."""


def build(reg: Registry, doc: dict[str, Any]) -> matrix.Matrix:
    return matrix.build(reg, doc, RUNTIMES)


BASELINE_OBS = {"size_mib": 128, "write_past_size_fails": True, "mounts": {"shm": "tmpfs", "ro": False}}

REGISTRY: dict[str, Any] = {
    "document": {"title": "Test parity", "intro": "What each runtime did.", "source": "https://example.org/seed"},
    "sections": {
        "pending": {"title": "Pending items", "text": "Fixable."},
        "architectural": {"title": "Architectural limitations", "text": "Follows from the VM."},
        "everyday": {"title": "Everyday", "text": "What everyone uses."},
    },
    "areas": {"runtime_commands": "Runtime commands", "networking": "Networking", "resources": "Resources"},
    "scenarios": [
        {"id": "resources/shm-size", "title": "docker run --shm-size", "section": "pending", "severity": "SHOULD",
         "summary": "The size of /dev/shm.", "oracle": "df on /dev/shm", "workaround": "Mount a tmpfs.",
         "links": ["https://github.com/kata-containers/kata-containers/issues/21"],
         "expect": {"runc": {"outcome": "same", "reason": "baseline"},
                    "runvm": {"outcome": "same", "reason": "the agent mounts it with the size"},
                    "runsc": {"outcome": "differs", "reason": "keeps 64 MiB",
                              "link": "https://github.com/google/gvisor/issues/1"},
                    "kata": {"outcome": "differs", "reason": "keeps its default size"}}},
        {"id": "runtime_commands/ps", "title": "docker top", "section": "pending", "severity": "SHOULD",
         "summary": "Processes listed by docker top.",
         "links": ["https://github.com/kata-containers/runtime/issues/129"],
         "expect": {"runc": {"outcome": "same", "reason": "baseline"},
                    "runvm": {"outcome": "same", "reason": "host stubs named after guest processes"},
                    "runsc": {"outcome": "same", "reason": "sandbox pids"},
                    "kata": {"outcome": "refused", "reason": "no ps command"}}},
        {"id": "networking/net-host", "title": "docker run --net=host", "section": "architectural",
         "severity": "SHOULD", "summary": "The host's network stack.",
         "expect": {"runc": {"outcome": "same", "reason": "baseline"},
                    "runvm": {"outcome": "differs", "reason": "loopback only"},
                    "runsc": {"outcome": "same", "reason": "passes the host's interfaces through"},
                    "kata": {"outcome": "host-impact", "reason": "may reconfigure the host"}}},
        {"id": "resources/privileged", "title": "docker run --privileged", "section": "architectural",
         "severity": "MAY", "summary": "All capabilities and devices.",
         "expect": {"runc": {"outcome": "baseline-unavailable", "reason": "runc cannot here"},
                    "runvm": {"outcome": "baseline-unavailable", "reason": "runc cannot here"},
                    "runsc": {"outcome": "baseline-unavailable", "reason": "runc cannot here"}}},
        {"id": "runtime_commands/exec", "title": "docker exec", "section": "everyday", "severity": "MUST",
         "summary": "exec with options.",
         "expect": {"runc": {"outcome": "same", "reason": "baseline"},
                    "runvm": {"outcome": "same", "reason": "exec-shim"},
                    "runsc": {"outcome": "same", "reason": "implements exec"}}},
    ],
}

PROVENANCE: dict[str, Any] = {
    "host": {"hostname": "testhost", "kernel": "6.1.0-test", "arch": "x86_64", "distro": "Debian GNU/Linux 12",
             "cgroup": "v2 (unified)", "cpus": 4, "dev_kvm": True, "cpu_virt_flags": True},
    "docker": {"server": "20.10.24", "api": "1.41", "containerd": "containerd 1.6.20", "runc_commit": "1.1.5",
               "storage_driver": "overlay2", "cgroup_driver": "systemd"},
    "runtimes": {"runc": {"path": "runc", "args": [], "version": "runc version 1.1.5\ncommit: x"},
                 "runvm": {"path": "/usr/bin/runvm", "args": [], "version": "runvm 0.1.0", "accel": "kvm"},
                 "runsc": {"path": "/usr/bin/runsc", "args": ["--network=host"], "version": "runsc 2022"}},
    "suite": {"commit": "0123456789abcdef", "dirty": False},
    "started": "2026-01-01T00:00:00+00:00",
    "finished": "2026-01-01T00:10:00+00:00",
    "suite_at_finish": {"commit": "0123456789abcdef", "dirty": False},
    "options": {"repeat": 1, "examples": 4, "profile": "fast"},
}


def registry() -> Registry:
    raw = copy.deepcopy(REGISTRY)
    schema.validate("registry", raw)
    return Registry(raw)


def observed(observation: dict[str, Any] | None = None, refusal: str | None = None, error: str | None = None,
             host_changes: list[str] | None = None) -> dict[str, Any]:
    return {"observation": observation, "refusal": refusal, "error": error, "host_changes": host_changes or []}


def cell(scenario: str, runtime: str, outcome: str, target: dict[str, Any] | None = None,
         baseline: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
         run_id: str = "run-1") -> dict[str, Any]:
    base = baseline or observed(BASELINE_OBS)
    tgt = target or (base if outcome == "same" else observed({**BASELINE_OBS, "size_mib": 64}))
    return {"scenario": scenario, "runtime": runtime, "run_id": run_id, "outcome": outcome, "reason": None,
            "examples": [{"params": params or {}, "attempt": 1, "baseline": base, "target": tgt,
                          "outcome": outcome}],
            "attempts": 1, "duration_s": 1.5,
            "evidence": {"dir": f"cells/{scenario.replace('/', '__')}/{runtime}", "commands": ["docker run"]}}


def results(overrides: dict[tuple[str, str], str] | None = None, run_id: str = "run-1",
            runtimes: tuple[str, ...] = ("runc", "runvm", "runsc")) -> dict[str, Any]:
    """Every registered scenario under `runtimes`, each cell at its expectation unless overridden."""
    overrides = overrides or {}
    cells = []
    for s in REGISTRY["scenarios"]:
        for rt in runtimes:
            outcome = overrides.get((s["id"], rt), s["expect"][rt]["outcome"])
            if outcome == "refused":
                c = cell(s["id"], rt, outcome, target=observed(refusal="docker run: OCI runtime create failed: "
                                                               "no such thing"), run_id=run_id)
            elif outcome == "baseline-unavailable":
                refusal = observed(refusal="docker run --privileged: unable to apply caps: operation not permitted")
                c = cell(s["id"], rt, outcome, baseline=refusal, target=observed({"caps": "all"}), run_id=run_id)
            elif outcome == "host-impact":
                c = cell(s["id"], rt, outcome, target=observed(BASELINE_OBS, host_changes=["added: link tap0"]),
                         run_id=run_id)
            elif outcome == "error":
                c = cell(s["id"], rt, outcome, target=observed(error="Traceback ...\nKeyError: 'size'"),
                         run_id=run_id)
            else:
                c = cell(s["id"], rt, outcome, run_id=run_id)
            cells.append(c)
    doc = {"schema_version": 1, "run_id": run_id, "baseline": "runc", "runtimes": list(runtimes),
           "provenance": copy.deepcopy(PROVENANCE), "cells": sorted(cells, key=lambda c: (c["scenario"],
                                                                                         c["runtime"]))}
    schema.validate("results", doc)
    return doc
