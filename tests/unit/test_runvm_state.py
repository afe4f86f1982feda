"""runvm's state.json and the cost of starting runvm: every OCI command is a new interpreter, four per
`docker run`, so what the light commands import, and whether bytecode is cached, is behaviour worth pinning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.runvm.errors import NotFound, RunvmError
from runtime.runvm.state import State, Store

REPO = Path(__file__).resolve().parents[2]


def test_state_survives_a_save_and_load(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.root.mkdir(exist_ok=True)
    store.dir("c1").mkdir()
    st = State(id="c1", bundle="/b", rootfs="/b/rootfs", pid=42, pid_start=7, extra={"pool_slot": None})
    store.save(st)
    loaded = store.load("c1")
    assert loaded == st
    assert loaded.annotations == {} and loaded.exit_code is None and loaded.status == "created"
    assert store.update("c1", status="stopped", exit_code=3).to_dict() == {**st.to_dict(), "status": "stopped",
                                                                            "exit_code": 3}
    assert [p.name for p in store.dir("c1").iterdir()] == ["state.json"]  # no temporary file left


def test_defaults_are_not_shared_between_states() -> None:
    a, b = State(id="a", bundle="", rootfs=""), State(id="b", bundle="", rootfs="")
    a.extra["x"] = 1
    assert b.extra == {}


def test_a_state_file_with_unknown_fields_is_reported_as_corrupt(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.dir("c2").mkdir(parents=True)
    (store.dir("c2") / "state.json").write_text(json.dumps({"id": "c2", "bundle": "", "rootfs": "", "bogus": 1}))
    with pytest.raises(RunvmError, match=r"state of container c2 is corrupt.*bogus"):
        store.load("c2")
    with pytest.raises(NotFound):
        store.load("absent")


def _imported_by(code: str, env: dict[str, str] | None = None) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}; import sys, json; print(json.dumps(sorted(sys.modules)))"],
                         cwd=REPO, capture_output=True, text=True, check=True, env=env)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("command", ["start", "state", "kill", "delete"])
def test_the_light_commands_do_not_import_the_heavy_modules(command: str) -> None:
    mods = _imported_by(f"from runtime.runvm.cli import main; import runtime.runvm.commands.{command}")
    assert not mods & {"dataclasses", "typing", "tempfile", "hashlib", "asyncio", "inspect", "uuid"}


def test_runvm_keeps_its_bytecode_whatever_the_environment_says() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", "import runtime.runvm, sys; print(sys.dont_write_bytecode)"],
                         cwd=REPO, capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
