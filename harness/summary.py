"""One line per runtime (`runvm: 20 same | 3 differs | 1 refused`), for terminals and CI logs."""

from __future__ import annotations

from collections import Counter

from harness.matrix import Matrix
from harness.outcomes import Outcome, Verdict

_FLAGGED = ((Verdict.REGRESSION, "regression", "regressions"),
            (Verdict.UNEXPECTED_PASS, "unexpected pass", "unexpected passes"))


def line(matrix: Matrix, runtime: str) -> str:
    cells = [c for c in matrix.cells if c.runtime == runtime]
    outcomes = Counter(c.outcome for c in cells)
    text = f"{runtime}: " + " | ".join(f"{outcomes[o]} {o}" for o in Outcome if outcomes[o])
    verdicts = Counter(c.verdict for c in cells)
    flagged = [f"{verdicts[v]} {one if verdicts[v] == 1 else many}" for v, one, many in _FLAGGED if verdicts[v]]
    return text + (f" ({', '.join(flagged)})" if flagged else "")


def lines(matrix: Matrix) -> list[str]:
    return [line(matrix, r.name) for r in matrix.run_runtimes]
