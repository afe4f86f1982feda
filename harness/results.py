"""The run's results.json: one record per cell, schema-validated and written atomically on every update."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness import schema


def write_json_atomic(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        json.dump(document, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise SystemExit(f"cannot read results file {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise schema.SchemaError(f"{path}: not valid JSON: {e}") from e
    schema.validate("results", doc)
    return doc


class ResultsStore:
    """Keeps the document in memory; every change is validated and lands on disk whole or not at all."""

    def __init__(self, run_dir: Path, run_id: str, baseline: str, runtimes: list[str],
                 provenance: dict[str, Any]) -> None:
        self.path = run_dir / "results.json"
        self._lock = threading.Lock()
        self.doc: dict[str, Any] = {
            "schema_version": 1, "run_id": run_id, "baseline": baseline, "runtimes": runtimes,
            "provenance": provenance, "cells": [],
        }
        self._save()

    def _save(self) -> None:
        schema.validate("results", self.doc)
        write_json_atomic(self.path, self.doc)

    def record(self, cell: dict[str, Any]) -> None:
        with self._lock:
            cells = [c for c in self.doc["cells"]
                     if (c["scenario"], c["runtime"]) != (cell["scenario"], cell["runtime"])]
            cells.append(cell)
            cells.sort(key=lambda c: (c["scenario"], c["runtime"]))
            previous = self.doc["cells"]
            self.doc["cells"] = cells
            try:
                self._save()
            except Exception:
                self.doc["cells"] = previous
                raise

    def finish(self, finished: str, suite_at_finish: dict[str, Any] | None = None) -> None:
        """suite_at_finish is the suite's commit when the run ended: a reference must start and end on one."""
        with self._lock:
            self.doc["provenance"]["finished"] = finished
            if suite_at_finish is not None:
                self.doc["provenance"]["suite_at_finish"] = suite_at_finish
            self._save()
