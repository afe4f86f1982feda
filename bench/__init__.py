"""Benchmarks: runc, runvm and runsc side by side, reported as ratios to runc (measurements, not assertions)."""
