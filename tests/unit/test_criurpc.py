"""The guest agent's hand-made protobuf for CRIU's RPC: what it encodes decodes back to the same fields, and the
bytes match protobuf's wire format (checked against fixed encodings from the proto2 spec)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.agent import criurpc


def test_known_encodings() -> None:
    # field 1 varint 150 is the protobuf documentation's example: 08 96 01
    assert bytes(criurpc.Message().number(1, 150).data) == b"\x08\x96\x01"
    # a negative int32 is ten bytes of two's complement
    assert bytes(criurpc.Message().number(2, -1).data) == b"\x10" + b"\xff" * 9 + b"\x01"
    assert bytes(criurpc.Message().text(2, "testing").data) == b"\x12\x07testing"


@given(st.lists(st.tuples(st.integers(1, 200), st.one_of(st.integers(0, 2**32), st.binary(max_size=300))),
                max_size=20))
def test_round_trip(fields: list[tuple[int, int | bytes]]) -> None:
    msg = criurpc.Message()
    want: dict[int, list[int | bytes]] = {}
    for num, value in fields:
        if isinstance(value, int):
            msg.number(num, value)
        else:
            msg.blob(num, value)
        want.setdefault(num, []).append(value)
    assert criurpc.decode(bytes(msg.data)) == want


def test_nested_restore_request() -> None:
    """The shape of what the agent sends: a RESTORE request with opts holding repeated inherit_fd messages."""
    opts = criurpc.Message().number(criurpc.IMAGES_DIR_FD, 5).text(criurpc.ROOT, "/run/x/root")
    opts.number(criurpc.MANAGE_CGROUPS_MODE, criurpc.CG_IGNORE)
    for fd, name in ((7, "pipe:[1]"), (9, "pipe:[2]")):
        opts.sub(criurpc.INHERIT_FD, criurpc.Message().text(1, name).number(2, fd))
    req = criurpc.decode(bytes(criurpc.Message().number(1, criurpc.RESTORE).sub(2, opts).data))
    assert req[1] == [criurpc.RESTORE]
    got = criurpc.decode(req[2][0])  # type: ignore[arg-type]
    assert got[criurpc.IMAGES_DIR_FD] == [5] and got[criurpc.ROOT] == [b"/run/x/root"]
    assert got[criurpc.MANAGE_CGROUPS_MODE] == [0]  # proto2: an explicit 0 must be on the wire
    assert [criurpc.decode(m) for m in got[criurpc.INHERIT_FD]] == [  # type: ignore[arg-type]
        {1: [b"pipe:[1]"], 2: [7]}, {1: [b"pipe:[2]"], 2: [9]}]
