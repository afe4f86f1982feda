"""Start latency: wall time of `docker run --rm IMG true`, per runtime, median of N runs after one warm-up.

This is what a user waits for, end to end: the docker CLI, dockerd, containerd and the runtime."""

from __future__ import annotations

import argparse
import time

from bench.common import DEFAULT_RUNTIMES, available, docker_cli, image, median, table


def measure(runtime: str, runs: int) -> dict[str, object]:
    times: list[float] = []
    failures = 0
    for i in range(runs + 1):
        t0 = time.monotonic()
        proc = docker_cli("run", "--rm", "--runtime", runtime, "--label", "vmparity.bench=1", image(), "true")
        elapsed = time.monotonic() - t0
        if proc.returncode != 0:
            failures += 1
            continue
        if i > 0:  # the first run warms caches (and may build runvm's template)
            times.append(elapsed)
    return {"runtime": runtime, "median_s": median(times), "min_s": round(min(times), 3) if times else None,
            "max_s": round(max(times), 3) if times else None, "runs": len(times), "failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runtime", action="append", default=None)
    args = ap.parse_args(argv)
    rows = [measure(r, args.runs) for r in available(args.runtime or DEFAULT_RUNTIMES)]
    print("start latency: docker run --rm IMG true")
    print(table(rows, "runc", "median_s", "s"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
