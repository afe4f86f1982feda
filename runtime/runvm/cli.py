"""`runvm`: runc's command line. Global flags first, then one command; each command is one module in
runtime/runvm/commands/. Go-style flags: `-bundle x` and `--bundle x` mean the same."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from runtime.runvm import DEFAULT_ROOT, VERSION, log
from runtime.runvm.errors import RunvmError
from runtime.runvm.state import Store

COMMANDS = ["create", "start", "state", "kill", "delete", "exec", "ps", "update", "pause", "resume", "checkpoint",
            "restore", "events", "list", "run", "template", "pool", "prepare", "leftovers"]
ALIASES = {"ls": "list"}
STDIO_COMMANDS = {"create", "run", "exec", "restore"}
"""Their stdio is the container's (or the exec'd process's): nothing of ours may be written there."""
SPEC_VERSION = "1.0.2"


class Context:
    """The global flags, as every command sees them (a plain class: see State on dataclasses' import cost)."""

    def __init__(self, root: str, store: Store, log_path: str | None, log_format: str, systemd_cgroup: bool,
                 debug: bool, boot: str = "auto", tb_mib: int | None = None, pool: bool = False) -> None:
        self.root, self.store, self.log_path, self.log_format = root, store, log_path, log_format
        self.systemd_cgroup, self.debug, self.boot, self.tb_mib, self.pool = systemd_cgroup, debug, boot, tb_mib, pool


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    names: set[str] = set()
    for action in parser._actions:
        names.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= _long_options(sub)
    return names


def normalise(argv: list[str], known: set[str]) -> list[str]:
    """Go's flag package accepts one dash for long flags (`-no-subreaper`); argparse wants two."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name = "-" + arg.split("=", 1)[0]
            if name in known:
                arg = "-" + arg
        out.append(arg)
    return out


def global_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runvm", description="An OCI runtime that runs each container in its own VM.",
                                allow_abbrev=False, add_help=False)
    p.add_argument("--help", "-h", action="store_true")
    p.add_argument("--root", default=DEFAULT_ROOT, help="root directory for container state")
    p.add_argument("--log", default=None, help="log file (containerd passes <bundle>/log.json)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted; runvm uses cgroupfs paths")
    p.add_argument("--criu", default="criu", help="accepted for runc compatibility; CRIU runs inside the guest")
    p.add_argument("--rootless", default="false")
    p.add_argument("--boot", default=os.environ.get("RUNVM_BOOT", "auto"), choices=["auto", "cold"],
                   help="runvm's own: auto restores from the VM template when one is usable, cold always boots")
    p.add_argument("--tb-mib", default=os.environ.get("RUNVM_TB_MIB"),
                   help="runvm's own: MiB of QEMU's translation cache under TCG (default 16); larger starts "
                        "faster and costs about that much more host memory per container")
    p.add_argument("--pool", action="store_true", default=os.environ.get("RUNVM_POOL", "") not in ("", "0"),
                   help="runvm's own: take a VM restored ahead of time from the spare pool when one is ready, "
                        "and start its replacement (one spare VM per template and cache size)")
    p.add_argument("--guest-cgroup", default=None, choices=["host", "v2"],
                   help="runvm's own: the cgroup hierarchy the guest mounts: the host's version (default), or v2 "
                        "whatever the host has (also RUNVM_GUEST_CGROUP=v2)")
    p.add_argument("--version", "-v", action="store_true")
    p.add_argument("command", nargs="?", choices=[*COMMANDS, *ALIASES])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def command_parser(name: str, module: object) -> argparse.ArgumentParser:
    sp = argparse.ArgumentParser(prog=f"runvm {name}", description=(module.__doc__ or "").strip(),
                                 allow_abbrev=False)
    module.add_arguments(sp)  # type: ignore[attr-defined]
    return sp


def _help() -> str:
    lines = ["usage: runvm [global options] COMMAND [options] ID", "", "commands:"]
    for name in COMMANDS:
        doc = (importlib.import_module(f"runtime.runvm.commands.{name}").__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<11} {doc[0] if doc else ''}")
    return "\n".join(lines) + "\n"


def version_text() -> str:
    """runc's lines, plus what a matrix's provenance should record about this host's runvm."""
    from runtime.runvm.vm import accel

    return (f"runvm version {VERSION}\nspec: {SPEC_VERSION}\n"
            f"accel: {accel.describe()}\ntemplate: {_template_status()}\n")


def _template_status() -> str:
    try:
        from runtime.runvm.commands.template import _base
        from runtime.runvm.vm import template

        _cfg, key = _base()
        found, why = template.find(key)
        return f"usable ({key}): containers start restored from it" if found else f"none ({why}): cold boots"
    except Exception as e:  # a version probe must answer whatever the guest's state
        return f"unknown ({e})"


def main(argv: list[str] | None = None) -> int:
    """Only the chosen command's module is imported: `runvm start` must not pay for create's imports."""
    argv = list(sys.argv[1:] if argv is None else argv)
    log.trace("cli " + " ".join(argv[-2:]))
    gp = global_parser()
    gargs = gp.parse_args(normalise(argv, _long_options(gp) | _COMMON_LONG))
    log.configure(gargs.log, gargs.log_format)
    if gargs.version:
        sys.stdout.write(version_text())
        return 0
    if gargs.help or not gargs.command:
        (sys.stdout if gargs.help else sys.stderr).write(_help())
        return 0 if gargs.help else 2
    if gargs.guest_cgroup:
        os.environ["RUNVM_GUEST_CGROUP"] = gargs.guest_cgroup  # cgroups.layout() reads it where the guest is set up
    name = ALIASES.get(gargs.command, gargs.command)
    module = importlib.import_module(f"runtime.runvm.commands.{name}")
    sp = command_parser(name, module)
    args = sp.parse_args(normalise(gargs.rest, _long_options(sp)))
    try:
        ctx = Context(gargs.root, Store(gargs.root), gargs.log, gargs.log_format, gargs.systemd_cgroup,
                      gargs.debug, gargs.boot, tb_mib(gargs.tb_mib), gargs.pool)
        rc = int(module.run(args, ctx) or 0)
        log.trace(f"cli {name} done")
        return rc
    except RunvmError as e:
        log.error(str(e))  # to --log when given: containerd reports its last error line for create/exec
        if gargs.log and name not in STDIO_COMMANDS:
            print(f"runvm: {e}", file=sys.stderr)  # go-runc puts the output of the others in its error
        return 1
    except KeyboardInterrupt:
        return 130


_COMMON_LONG: set[str] = set()
TB_MIB_RANGE = (1, 2048)


def tb_mib(value: str | None) -> int | None:
    """--tb-mib (or RUNVM_TB_MIB), checked here so that a typo in daemon.json fails every create with its name
    rather than as a QEMU start error."""
    if value is None or value == "":
        return None
    lo, hi = TB_MIB_RANGE
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not lo <= n <= hi:
        raise RunvmError(f"--tb-mib must be a whole number of MiB from {lo} to {hi} (QEMU's translation cache), "
                         f"got {value!r}")
    return n


if __name__ == "__main__":
    sys.exit(main())
