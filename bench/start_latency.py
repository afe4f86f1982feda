"""Start latency: wall time of `docker run --rm IMG true`, per runtime, median of N runs after one warm-up.

This is what a user waits for, end to end: the docker CLI, dockerd, containerd and the runtime. The runtimes take
turns (one run each per round), so a host that speeds up or slows down during the benchmark moves every runtime
alike and the ratios to runc stay comparable."""

from __future__ import annotations

import argparse
import time

from bench.common import DEFAULT_RUNTIMES, available, docker_cli, image, median, table


def run_once(runtime: str) -> float | None:
    t0 = time.monotonic()
    proc = docker_cli("run", "--rm", "--runtime", runtime, "--label", "vmparity.bench=1", image(), "true")
    elapsed = time.monotonic() - t0
    return elapsed if proc.returncode == 0 else None


def measure(runtimes: list[str], runs: int) -> list[dict[str, object]]:
    times: dict[str, list[float]] = {r: [] for r in runtimes}
    failures = dict.fromkeys(runtimes, 0)
    for i in range(runs + 1):
        for runtime in runtimes:
            elapsed = run_once(runtime)
            if elapsed is None:
                failures[runtime] += 1
            elif i > 0:  # the first round warms caches (and may build runvm's template)
                times[runtime].append(elapsed)
    return [{"runtime": r, "median_s": median(t), "min_s": round(min(t), 3) if t else None,
             "max_s": round(max(t), 3) if t else None, "runs": len(t), "failures": failures[r]}
            for r, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runtime", action="append", default=None)
    args = ap.parse_args(argv)
    rows = measure(available(args.runtime or DEFAULT_RUNTIMES), args.runs)
    print("start latency: docker run --rm IMG true")
    print(table(rows, "runc", "median_s", "s"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
