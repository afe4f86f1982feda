"""Noticing `docker network connect/disconnect`: Docker moves a veth into (or out of) the netns; a netlink
link-group subscription wakes the shim, which then reconciles with a plumbing pass."""

from __future__ import annotations

import socket

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


def subscribe() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                      NETLINK_ROUTE)
    s.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
    return s


def drain(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            s.recv(65536)
            n += 1
        except BlockingIOError:
            return n
