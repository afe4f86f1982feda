"""Wall time of a whole matrix run (runc, runvm, runsc by default), from the run's own provenance: `vmparity run`
records when it started and finished. Without --results, runs the matrix first."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from harness import paths, results


def wall_seconds(results_file: Path) -> float:
    prov = results.load(results_file)["provenance"]
    if not prov.get("finished"):
        raise SystemExit(f"{results_file}: the run did not finish")
    return (datetime.fromisoformat(prov["finished"]) - datetime.fromisoformat(prov["started"])).total_seconds()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", type=Path, default=None, help="an existing results.json to read")
    ap.add_argument("--runtime", action="append", default=[])
    args = ap.parse_args(argv)
    target = args.results
    if target is None:
        run_dir = paths.RUNS / "bench-matrix"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--plain", "--no-render", "--run-dir", str(run_dir)]
        for r in args.runtime:
            cmd += ["--runtime", r]
        subprocess.run(cmd, check=False)
        target = run_dir / "results.json"
    doc = results.load(target)
    cells = len(doc["cells"])
    print(f"matrix: {', '.join(doc['runtimes'])}: {cells} cells in {wall_seconds(target) / 60:.1f} min "
          f"({target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
