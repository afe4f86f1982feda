"""A signal right after the init's exec waits for the init's handler, up to a limit; SIGKILL never waits.
Real child processes stand in for the container's init (here not PID 1, so an unhandled signal kills them,
which shows whether it was held back)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from runtime.agent import signals

LATE_HANDLER = ("import signal, sys, time; time.sleep(0.3); "
                "signal.signal(signal.SIGTERM, lambda *_: (print('got-term', flush=True), sys.exit(0))); "
                "print('ready', flush=True); time.sleep(30)")


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_term_sent_before_the_handler_exists_reaches_it() -> None:
    p = _child(LATE_HANDLER)
    try:
        asyncio.run(signals.send_to_init(p.pid, signal.SIGTERM, exec_at=time.monotonic(), settle_s=5.0))
        out, _ = p.communicate(timeout=10)
        assert p.returncode == 0 and out.splitlines() == ["ready", "got-term"]
    finally:
        p.kill()
        p.wait()


def test_without_a_recent_exec_the_signal_goes_at_once() -> None:
    p = _child(LATE_HANDLER)
    try:
        asyncio.run(signals.send_to_init(p.pid, signal.SIGTERM, exec_at=None))
        out, _ = p.communicate(timeout=10)
        assert p.returncode == -signal.SIGTERM and out == ""
    finally:
        p.kill()
        p.wait()


def test_the_wait_ends_after_settle_s_and_sigkill_never_waits() -> None:
    for sig, settle_s, at_least in ((signal.SIGTERM, 0.3, 0.3), (signal.SIGKILL, 5.0, 0.0)):
        p = _child("import time; time.sleep(30)")
        try:
            t0 = time.monotonic()
            asyncio.run(signals.send_to_init(p.pid, sig, exec_at=t0, settle_s=settle_s))
            took = time.monotonic() - t0
            assert p.wait(timeout=10) == -sig
            assert at_least <= took < at_least + 1.0, (sig, took)
        finally:
            p.kill()
            p.wait()


def test_an_exited_init_is_not_waited_for() -> None:
    p = subprocess.Popen(["true"])
    time.sleep(0.2)  # a zombie now: not reaped yet
    try:
        assert signals.handled(p.pid, signal.SIGTERM)
    finally:
        p.wait()
