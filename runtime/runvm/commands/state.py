"""print a container's state as JSON"""

from __future__ import annotations

import argparse
import json
import sys

from runtime.runvm.state import check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")


def run(args: argparse.Namespace, ctx: object) -> int:
    st = ctx.store.load(check_id(args.id))  # type: ignore[attr-defined]
    doc = st.oci()
    doc["runvm"] = {"accel": st.accel, "boot": st.boot, "boot_reason": st.boot_reason, "exit_code": st.exit_code}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
