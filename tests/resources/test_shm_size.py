"""`docker run --shm-size N`: /dev/shm inside is N bytes, and writing past N fails."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from harness.context import Ctx
from harness.scenario import scenario

MiB = 1024 * 1024


@scenario("resources/shm-size",
          params=st.fixed_dictionaries({"mib": st.integers(min_value=8, max_value=256)}),
          examples=[{"mib": 128}])
def test_shm_size(ctx: Ctx, mib: int) -> dict[str, Any]:
    c = ctx.run(["sleep", "600"], shm_size=f"{mib}m")
    size_kib = int(ctx.sh(c, "df -k /dev/shm | awk 'NR==2 {print $2}'").strip())
    past = ctx.exec(c, f"dd if=/dev/zero of=/dev/shm/fill bs=1M count={mib + 4} 2>&1; echo rc=$?")
    written = int(ctx.sh(c, "stat -c %s /dev/shm/fill").strip())
    return {
        "size_mib": size_kib // 1024,
        "write_past_size_fails": "rc=0" not in past.stdout,
        "no_space_error": "No space left" in past.stdout,
        "bytes_written_mib": written // MiB,
    }
