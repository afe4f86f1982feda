"""Renders of a run: docs/limitations.md, reports/matrix.html (JUnit lives in harness/junit.py)."""
