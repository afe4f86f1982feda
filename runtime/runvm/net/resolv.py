"""Docker's embedded DNS server, as a container's resolv.conf names it. No imports: the resident shim reads it
too, and its memory is per-container host memory."""

from __future__ import annotations


def nameserver_on_loopback(text: str) -> str | None:
    """The first nameserver when it is a loopback address (Docker's embedded server on user networks)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1] if parts[1].startswith("127.") else None
    return None


def source_of(mounts: list[dict[str, object]]) -> str | None:
    """Where the daemon keeps the file it binds on /etc/resolv.conf."""
    for m in mounts:
        if m.get("destination") == "/etc/resolv.conf":
            src = m.get("source")
            return src if isinstance(src, str) and src else None
    return None
