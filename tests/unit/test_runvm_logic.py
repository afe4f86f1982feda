"""runvm's pure logic: flag spelling, spec checks, signals, runc's sysctl rule, the wire protocol, VM growth."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.runvm import spec as specmod
from runtime.runvm import sysctls
from runtime.runvm.cli import normalise, tb_mib
from runtime.runvm.errors import RunvmError
from runtime.runvm.shim import resize, top
from runtime.runvm.state import check_id
from runtime.runvm.vm import guest, qemu, stub_kernel
from runtime.wire import frames as protocol

KNOWN = {"--bundle", "--pid-file", "--console-socket", "--no-subreaper", "--root"}


def test_go_style_single_dash_flags_become_double() -> None:
    argv = ["-root", "/r", "restore", "-bundle", "/b", "-no-subreaper", "-pid-file=/p", "-", "-1", "id"]
    assert normalise(argv, KNOWN) == ["--root", "/r", "restore", "--bundle", "/b", "--no-subreaper",
                                      "--pid-file=/p", "-", "-1", "id"]


@pytest.mark.parametrize(("text", "num"), [("9", 9), ("KILL", 9), ("SIGTERM", 15), ("term", 15), ("usr1", 10)])
def test_signals(text: str, num: int) -> None:
    assert specmod.parse_signal(text) == num


@pytest.mark.parametrize("text", ["0", "99", "SIGNOPE", "", "-3"])
def test_invalid_signals_are_named(text: str) -> None:
    with pytest.raises(RunvmError, match="invalid signal"):
        specmod.parse_signal(text)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "a b", "x\n"])
def test_bad_ids(cid: str) -> None:
    with pytest.raises(RunvmError, match="invalid container id"):
        check_id(cid)


@pytest.mark.parametrize(("spec", "message"), [
    ([], "must be a JSON object"),
    ({"root": {"path": "r"}, "process": {"args": ["sh"]}}, "ociVersion"),
    ({"ociVersion": "1", "process": {"args": ["sh"]}}, "root.path"),
    ({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": []}}, "args must be a non-empty"),
    ({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "rel"}}, "cwd"),
    ({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": ["sh"]}, "mounts": [{"destination": "x"}]},
     "not absolute"),
])
def test_spec_problems_are_named(spec: object, message: str) -> None:
    with pytest.raises(RunvmError, match=message):
        specmod.validate(spec, "config.json")


def _spec(sysctl: dict[str, str], namespaces: list[str], annotations: dict[str, str] | None = None) -> dict:
    return {"linux": {"sysctl": sysctl, "namespaces": [{"type": t} for t in namespaces]},
            "annotations": annotations or {}}


@pytest.mark.parametrize(("key", "namespaces", "allowed"), [
    ("net.ipv4.ip_forward", ["network"], True),
    ("net.ipv4.ip_forward", [], False),
    ("kernel.shmmax", ["ipc"], True),
    ("fs.mqueue.msg_max", ["ipc"], True),
    ("kernel.shmmax", [], False),
    ("kernel.hostname", ["uts"], True),
    ("vm.swappiness", ["network", "ipc", "uts"], False),
    ("kernel.panic", ["network", "ipc", "uts"], False),
])
def test_runcs_sysctl_rule(key: str, namespaces: list[str], allowed: bool) -> None:
    if allowed:
        sysctls.check(_spec({key: "1"}, namespaces))
    else:
        with pytest.raises(RunvmError, match="not in a separate kernel namespace"):
            sysctls.check(_spec({key: "1"}, namespaces))


def test_guest_kernel_sysctls_need_the_annotation() -> None:
    sysctls.check(_spec({"vm.swappiness": "10"}, [], {sysctls.GUEST_KERNEL_ANNOTATION: "true"}))


@given(st.lists(st.tuples(st.sampled_from([protocol.REQUEST, protocol.DATA, protocol.EOF, protocol.CREDIT]),
                          st.integers(0, 2**32 - 1), st.binary(max_size=300)), max_size=20),
       st.integers(1, 64))
def test_frames_survive_any_chunking(frames: list[tuple[int, int, bytes]], chunk: int) -> None:
    wire = b"".join(protocol.frame(k, i, p) for k, i, p in frames)
    dec = protocol.Decoder()
    got = []
    for start in range(0, len(wire), chunk):
        got += dec.feed(wire[start:start + chunk])
    assert got == frames


def test_an_oversized_frame_means_the_stream_is_out_of_sync() -> None:
    with pytest.raises(ValueError, match="out of sync"):
        protocol.Decoder().feed(protocol.HEADER.pack(protocol.DATA, 0, 1, protocol.MAX_PAYLOAD + 1))


@pytest.mark.parametrize(("status", "code"), [({"code": 0}, 0), ({"code": 3}, 3), ({"signal": 9}, 137),
                                              ({"signal": 15}, 143), ({}, 255)])
def test_exit_codes(status: dict, code: int) -> None:
    assert protocol.exit_code(status) == code


@pytest.mark.parametrize(("res", "cpus", "mem"), [
    ({}, 1, 0),
    ({"cpu": {"quota": 150000, "period": 100000}}, 2, 0),
    ({"cpu": {"cpus": "0-1,3"}}, 4, 0),
    ({"cpu": {"quota": 0, "period": 100000}}, 1, 0),
    ({"memory": {"limit": 1 << 30}}, 1, 1024 + resize.GUEST_OVERHEAD_MIB),
])
def test_what_a_vm_must_grow_to(res: dict, cpus: int, mem: int) -> None:
    assert resize.cpus_needed(res) == cpus
    assert resize.memory_needed_mib(res) == mem


def _elf_header(data: bytes) -> tuple:
    return struct.unpack("<4sBBBB8xHHIQQQIHHHHHH", data[:64])


def test_the_stub_kernel_is_an_elf_with_a_pvh_note() -> None:
    img = stub_kernel.image()
    magic, cls, *_rest = _elf_header(img)
    assert magic == b"\x7fELF" and cls == 2
    assert b"Xen\0" in img and struct.pack("<I", stub_kernel.ENTRY) in img


def test_the_stand_in_is_a_small_static_elf() -> None:
    img = top.image()
    header = _elf_header(img)
    assert header[0] == b"\x7fELF" and header[5] == 2 and header[6] == 62  # EXEC, x86-64
    assert len(img) < 4096, "a stand-in per guest process must stay a few hundred bytes"


def test_spectre_defences_are_off_only_where_they_protect_nothing() -> None:
    tcg, kvm = guest.cmdline("tcg").split(), guest.cmdline("kvm", "vmparity.probe=1").split()
    assert "mitigations=off" in tcg and "mitigations=off" not in kvm
    assert kvm[-1] == "vmparity.probe=1" and "quiet" in tcg and "quiet" in kvm


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("1", 1), ("32", 32), ("2048", 2048)])
def test_translation_cache_sizes_accepted(value: str | None, expected: int | None) -> None:
    assert tb_mib(value) == expected


@pytest.mark.parametrize("value", ["0", "-4", "2049", "16M", "lots", "1.5"])
def test_translation_cache_sizes_refused_with_the_flags_name(value: str) -> None:
    with pytest.raises(RunvmError, match=r"--tb-mib .* got '" + re.escape(value) + "'"):
        tb_mib(value)


def test_the_translation_cache_size_is_on_qemus_command_line_only_under_tcg(tmp_path: Path) -> None:
    def argv(accel: str, **kw: object) -> str:
        cfg = qemu.VMConfig(kernel=tmp_path, initrd=tmp_path, osimage=tmp_path, cmdline="", share_dir=tmp_path,
                            agent_sock=tmp_path, qmp_sock=tmp_path, accel=accel, **kw)  # type: ignore[arg-type]
        return " ".join(qemu.argv(cfg))

    assert "tb-size=16" in argv("tcg") and "tb-size=32" in argv("tcg", tb_size_mib=32)
    assert "tb-size" not in argv("kvm", tb_size_mib=32)
