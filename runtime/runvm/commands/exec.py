"""run a new process in a running container"""

from __future__ import annotations

import argparse
import os
import secrets

from runtime.runvm import spec as specmod
from runtime.runvm.commands._common import wait_ready, write_pid_file
from runtime.runvm.errors import RunvmError
from runtime.runvm.state import RUNNING, check_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", "-p", default=None, help="path to a process.json")
    p.add_argument("--console-socket", default=None)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--cwd", default=None)
    p.add_argument("--env", "-e", action="append", default=[])
    p.add_argument("--user", "-u", default=None, help="uid[:gid]")
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("id")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _process(args: argparse.Namespace, ctx: object) -> dict:
    if args.process:
        return specmod.read_process_file(args.process)  # read now: containerd deletes it once we return
    if not args.command:
        raise RunvmError("exec needs --process or a command")
    st = ctx.store.load(args.id)  # type: ignore[attr-defined]
    _bundle, spec = specmod.load_bundle(st.bundle)
    proc = dict(spec["process"])
    proc.update(args=args.command, terminal=args.tty)
    proc["env"] = list(proc.get("env") or []) + args.env
    if args.cwd:
        proc["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.no_new_privs:
        proc["noNewPrivileges"] = True
    return proc


def run(args: argparse.Namespace, ctx: object) -> int:
    container_id = check_id(args.id)
    proc = _process(args, ctx)
    store = ctx.store  # type: ignore[attr-defined]
    st = store.load(container_id)
    if st.effective_status() != RUNNING:
        raise RunvmError(f"cannot exec in a container that is {st.effective_status()}")
    if proc.get("terminal") and not args.console_socket:
        raise RunvmError("process.terminal is true but no --console-socket was given")
    from runtime.runvm.shim import exec_shim

    exec_id = "exec-" + secrets.token_hex(6)
    req = exec_shim.ExecRequest(sock_dir=store.sock_dir(container_id), exec_id=exec_id, process=proc, ready_fd=None,
                                console_socket=args.console_socket)
    if not args.detach:
        exec_shim.main(req)  # foreground: this process is the shim and exits with the process's code
    r, w = os.pipe()
    req.ready_fd = w
    pid = os.fork()
    if pid == 0:
        os.close(r)
        exec_shim.main(req)
    os.close(w)
    wait_ready(r, pid, "exec", 120)
    if args.pid_file:
        write_pid_file(args.pid_file, pid)
    return 0
