"""`vmparity`: run the suite, render its reports, compare runs, gate a release, merge hosts' results.

    vmparity run [--runtime R]... [--baseline runc] [--run-dir D] [--repeat N] [--examples N]
                 [--profile fast|deep] [--plain] [--no-render] [PATH...] [-- PYTEST-ARGS...]
    vmparity render [--results F] [--registry F] [--out-md F] [--out-html F|--no-html] [--junit F] [--check]
    vmparity diff A B [--json] [--all]
    vmparity gate [--results F] [--previous F] [--strict] [--junit F]
    vmparity merge A B... --out F [--run-id ID] [--prefer worse|latest]
    vmparity reference RUN_DIR     (make a run the committed reference that docs/ is rendered from)
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import diff as diffmod
from harness import gate as gatemod
from harness import junit, labels, matrix, paths, reference, registry, results, schema, summary
from harness import merge as mergemod
from harness.render import cell_evidence, html, markdown

SCENARIO_DIRS = ("tests/runtime_commands", "tests/networking", "tests/resources")
DEFAULT_RESULTS = paths.REFERENCE / "results.json"
LATEST_RESULTS = paths.RUNS / "latest" / "results.json"
DEFAULT_HTML = paths.REPORTS / "matrix.html"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(paths.REPO))
    except ValueError:
        return str(path)


def _say(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _load_matrix(results_path: Path, registry_path: Path) -> tuple[matrix.Matrix, dict]:
    if not results_path.exists():
        raise SystemExit(f"vmparity: no results at {results_path}; run `vmparity run` (or `vmparity reference "
                         "RUN_DIR` to make a run the reference)")
    doc = results.load(results_path)
    return matrix.build(registry.load(registry_path), doc), doc


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------------------------- render
def _href(target: Path, page: Path) -> str:
    return os.path.relpath(target, page.parent).replace(os.sep, "/") + "/"


def cmd_render(args: argparse.Namespace) -> int:
    m, _ = _load_matrix(args.results, args.registry)
    evidence_dir = args.evidence_dir or args.results.parent / "evidence"
    md = markdown.render(m, _href(evidence_dir, args.out_md))
    if args.check:
        current = args.out_md.read_text() if args.out_md.exists() else ""
        stale = cell_evidence.stale(m, evidence_dir)
        if current == md and not stale:
            _say(f"{args.out_md} and {_rel(evidence_dir)} are current (run {m.run_id})")
            return 0
        if current != md:
            delta = list(difflib.unified_diff(current.splitlines(), md.splitlines(), f"{args.out_md} (committed)",
                                              f"{args.out_md} (rendered from {args.results})", lineterm="", n=1))
            _say(f"{args.out_md} is stale or was edited by hand; regenerate it with `vmparity render` "
                 f"(it is rendered from {args.registry.name} and run {m.run_id}):")
            _say("\n".join(delta[:60]) + ("\n..." if len(delta) > 60 else ""))
        if stale:
            _say(f"the evidence in {_rel(evidence_dir)} is stale; regenerate it with `vmparity render`: "
                 + "; ".join(stale[:10]) + (" ..." if len(stale) > 10 else ""))
        return 1
    _write(args.out_md, md)
    written = [str(args.out_md)]
    files = cell_evidence.write_all(m, evidence_dir)
    written.append(f"{len(files)} evidence files in {evidence_dir}")
    if not args.no_html:
        _write(args.out_html, html.render(m, _href(evidence_dir, args.out_html)))
        written.append(str(args.out_html))
    if args.junit:
        junit.write(m, args.junit)
        written.append(str(args.junit))
    _say("\n".join(summary.lines(m)))
    _say("wrote " + ", ".join(written))
    return 0


# ------------------------------------------------------------------------------------------------- gate
def cmd_gate(args: argparse.Namespace) -> int:
    m, _ = _load_matrix(args.results, args.registry)
    previous = results.load(args.previous) if args.previous else None
    findings = gatemod.check(m, previous, strict=args.strict)
    if args.junit:
        junit.write(m, args.junit)
    _say("\n".join(summary.lines(m)))
    _say(gatemod.report(findings))
    return 1 if gatemod.failed(findings) else 0


# ------------------------------------------------------------------------------------------------- diff
def cmd_diff(args: argparse.Namespace) -> int:
    a, b = results.load(args.a), results.load(args.b)
    changes = diffmod.diff(a, b)
    _say(diffmod.to_json(a, b, changes) if args.json else diffmod.to_text(a, b, changes, all_cells=args.all))
    return 0


# ------------------------------------------------------------------------------------------------- merge
def cmd_merge(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        raise SystemExit(f"vmparity merge: no results at {', '.join(missing)} (a run directory's results.json; "
                         "the main job's is reports/runs/matrix/results.json, written by ./run matrix)")
    try:
        merged = mergemod.merge([results.load(p) for p in args.inputs], run_id=args.run_id, prefer=args.prefer)
    except mergemod.MergeError as e:
        raise SystemExit(f"vmparity merge: {e}") from e
    results.write_json_atomic(args.out, merged)
    conflicts = merged["provenance"]["merge"]["conflicts"]
    _say(f"wrote {args.out}: {len(merged['cells'])} cells from {len(merged['hosts'])} runs, "
         f"{len(conflicts)} conflicting cell{'s' if len(conflicts) != 1 else ''} "
         f"({merged['provenance']['merge']['rule']})")
    for c in conflicts:
        seen = ", ".join(f"{o['run_id']}={o['outcome']}" for o in c["observed"])
        _say(f"  {c['scenario']} @ {c['runtime']}: {seen} -> {c['kept']['outcome']}")
    return 0


# ------------------------------------------------------------------------------------------------- reference
def cmd_reference(args: argparse.Namespace) -> int:
    source = args.run if args.run.name == "results.json" else args.run / "results.json"
    if not source.exists():
        raise SystemExit(f"vmparity reference: no results at {source}")
    doc = results.load(source)
    found = reference.problems(doc, set(registry.load(args.registry).scenarios))
    if found and not args.allow_unclean:
        raise SystemExit(f"vmparity reference: run {doc['run_id']} is not one clean run, so docs/limitations.md "
                         "would describe code that is not at the commit it names:\n  - " + "\n  - ".join(found)
                         + "\nrun the matrix again at a clean commit, or pass --allow-unclean (the document's "
                         "header then says why)")
    doc["provenance"].pop("reference_problems", None)
    if found:
        doc["provenance"]["reference_problems"] = found
    schema.validate("results", doc)
    results.write_json_atomic(DEFAULT_RESULTS, doc)
    _say(f"{DEFAULT_RESULTS} is now run {doc['run_id']} ({len(doc['cells'])} cells); `vmparity render` next")
    return 0


# ------------------------------------------------------------------------------------------------- run
def pytest_args(args: argparse.Namespace, run_dir: Path, extra: Sequence[str]) -> list[str]:
    argv = [*(args.paths or [str(paths.REPO / d) for d in SCENARIO_DIRS]), "--run-dir", str(run_dir),
            "--baseline", args.baseline, "--repeat", str(args.repeat), "--examples", str(args.examples),
            "--slow-examples", str(args.slow_examples), "--profile", args.profile,
            "--rootdir", str(paths.REPO), "-c", str(paths.REPO / "pyproject.toml")]
    if args.stack:
        argv += ["--stack", str(args.stack)]
    for r in args.runtime:
        argv += ["--runtime", r]
    for r in args.slow or []:
        argv += ["--slow", r]
    return [*argv, *extra]


def _stacks_to_run(requested: list[str]) -> list[str | None]:
    """The stacks a run observes: none named is the host's own dockerd; `all` is every stack in stacks/ this
    machine reaches itself (another machine's stack runs there: `vmparity remote`)."""
    from harness import stack_data

    if not requested:
        return [None]
    names = stack_data.local_stacks() if "all" in requested else list(dict.fromkeys(requested))
    for n in names:
        stack_data.get(n)  # an unknown name is an error naming the known ones
    return list(names)


def cmd_run(args: argparse.Namespace, extra: Sequence[str]) -> int:
    stacks = _stacks_to_run(args.stack)
    if len(stacks) > 1:
        return _run_stacks(args, [s for s in stacks if s], extra)
    args.stack = stacks[0]
    return _run_one(args, extra)


def _run_stacks(args: argparse.Namespace, stacks: list[str], extra: Sequence[str]) -> int:
    """One run per stack, each in its own process and directory (D/<stack>/), then merged into D/results.json
    with a column per runtime and stack."""
    import subprocess

    run_dir = (args.run_dir or paths.RUNS / labels.new_run_id()).resolve()
    codes, parts = [], []
    for stack in stacks:
        argv = [sys.executable, "-m", "harness.cli", "run", "--stack", stack, "--run-dir", str(run_dir / stack),
                "--no-render", "--baseline", args.baseline, "--repeat", str(args.repeat), "--examples",
                str(args.examples), "--slow-examples", str(args.slow_examples), "--profile", args.profile,
                "--registry", str(args.registry), *(["--plain"] if args.plain else []),
                *[a for r in args.runtime for a in ("--runtime", r)],
                *[a for r in args.slow or [] for a in ("--slow", r)], *args.paths, *(["--", *extra] if extra else [])]
        _say(f"vmparity run: stack {stack} -> {run_dir / stack}")
        codes.append(subprocess.run(argv).returncode)
        if (run_dir / stack / "results.json").exists():
            parts.append(results.load(run_dir / stack / "results.json"))
    if not parts:
        _say("vmparity run: no stack wrote results")
        return max(codes) or 1
    merged = mergemod.merge(parts, run_id=run_dir.name)
    results.write_json_atomic(run_dir / "results.json", merged)
    _render_run(args, run_dir)
    return max(codes)


def _render_run(args: argparse.Namespace, run_dir: Path) -> None:
    results_path = run_dir / "results.json"
    if not args.no_render:
        m, _ = _load_matrix(results_path, args.registry)
        _write(run_dir / "limitations.md", markdown.render(m))
        _write(run_dir / "matrix.html", html.render(m))
        junit.write(m, run_dir / "junit.xml")
        _say("\n".join(summary.lines(m)))
        _say(f"wrote {run_dir / 'limitations.md'}, {run_dir / 'matrix.html'}, {run_dir / 'junit.xml'}")
    _say(f"results: {results_path}")


def _run_one(args: argparse.Namespace, extra: Sequence[str]) -> int:
    import pytest

    run_dir = (args.run_dir or paths.RUNS / labels.new_run_id()).resolve()
    plugins: list[object] = []
    if not args.plain:
        from harness.progress import CellProgress

        plugins.append(CellProgress())
    code = int(pytest.main(pytest_args(args, run_dir, extra), plugins=plugins))
    results_path = run_dir / "results.json"
    if not results_path.exists():
        _say(f"vmparity run: no results were written (pytest exit code {code})")
        return code or 1
    _render_run(args, run_dir)
    return code


# ------------------------------------------------------------------------------------------------- remote
def cmd_remote(args: argparse.Namespace, extra: Sequence[str]) -> int:
    """A kind-vm stack: boot its machine, run the suite there into RUN_DIR, then check what came back."""
    from harness import stack_data
    from harness.vmhost import machine, shard

    stack = stack_data.get(args.stack)
    if stack.kind != stack_data.VM:
        raise SystemExit(f"vmparity remote: stack {stack.name} is kind {stack.kind}, reached from here: "
                         f"`vmparity run --stack {stack.name}`")
    run_dir = (args.run_dir or paths.RUNS / f"{stack.name}-{labels.new_run_id()}").resolve()
    done = machine.run(stack, run_dir, list(extra), timeout=args.timeout, log=_say)
    _say(f"vmparity remote: the machine ran {done.wall_s:.0f} s; the suite there ended with status {done.status}"
         + (f" ({done.note})" if done.note else ""))
    if not (run_dir / "results.json").exists():
        _say(f"vmparity remote: no results came back; the last lines of {done.console}:\n"
             + shard.tail(done.console) + "\n" + shard.tail(run_dir / "inside.log"))
        return done.status if done.status > 0 else 1
    shard.annotate(run_dir / "results.json", stack, done)
    _render_run(args, run_dir)
    return done.status if done.status >= 0 else 1


# ------------------------------------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vmparity", description="Docker feature parity of OCI runtimes, by "
                                "observation: run the suite, render, compare, gate and merge results.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,remote,render,diff,gate,merge,reference}")

    r = sub.add_parser("run", help="run the scenario suite (pytest) and render the run's reports",
                       description="Runs the scenarios under the baseline and each runtime, writes "
                       "RUN_DIR/results.json and renders limitations.md, matrix.html and junit.xml next to it. "
                       "Arguments after `--` go to pytest unchanged (e.g. -- -k shm).")
    r.add_argument("paths", nargs="*", help=f"scenario files or directories (default: {' '.join(SCENARIO_DIRS)})")
    r.add_argument("--runtime", action="append", default=[], metavar="NAME",
                   help="runtime under test (repeatable; default: every runtime Docker reports)")
    r.add_argument("--baseline", default="runc")
    r.add_argument("--run-dir", type=Path, default=None, help="default: reports/runs/<new run id>")
    r.add_argument("--repeat", type=int, default=1)
    r.add_argument("--examples", type=int, default=4)
    r.add_argument("--slow-examples", type=int, default=2)
    r.add_argument("--slow", action="append", default=None, metavar="NAME")
    r.add_argument("--profile", choices=["fast", "deep"], default="fast")
    r.add_argument("--stack", action="append", default=[], metavar="NAME",
                   help="a Docker stack to observe (stacks/*.yaml; repeatable, or `all`; default: the host's own "
                   "dockerd). Several: one run per stack in RUN_DIR/<stack>/, merged into RUN_DIR")
    r.add_argument("--registry", type=Path, default=paths.REGISTRY)
    r.add_argument("--plain", action="store_true", help="pytest's own output instead of the progress bar")
    r.add_argument("--no-render", action="store_true", help="only results.json")

    d = sub.add_parser("render", help="docs/limitations.md, reports/matrix.html (and JUnit) from a results file")
    d.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"default: {_rel(DEFAULT_RESULTS)}")
    d.add_argument("--registry", type=Path, default=paths.REGISTRY, help=f"default: {_rel(paths.REGISTRY)}")
    d.add_argument("--out-md", type=Path, default=paths.LIMITATIONS_MD, help=f"default: {_rel(paths.LIMITATIONS_MD)}")
    d.add_argument("--out-html", type=Path, default=DEFAULT_HTML, help=f"default: {_rel(DEFAULT_HTML)}")
    d.add_argument("--no-html", action="store_true", help="skip the HTML page")
    d.add_argument("--junit", type=Path, default=None, help="also write JUnit XML here")
    d.add_argument("--evidence-dir", type=Path, default=None,
                   help="per-scenario evidence files (default: evidence/ next to --results)")
    d.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if --out-md or the evidence differs from what would be rendered")

    f = sub.add_parser("diff", help="per-cell changes between two results files")
    f.add_argument("a", type=Path)
    f.add_argument("b", type=Path)
    f.add_argument("--json", action="store_true")
    f.add_argument("--all", action="store_true", help="list unchanged cells too")

    g = sub.add_parser("gate", help="fail on regressions, unexpected passes and error cells")
    g.add_argument("--results", type=Path, default=LATEST_RESULTS, help=f"default: {_rel(LATEST_RESULTS)}")
    g.add_argument("--registry", type=Path, default=paths.REGISTRY)
    g.add_argument("--previous", type=Path, default=None, help="also fail on cells worse than in this run")
    g.add_argument("--strict", action="store_true", help="warnings (no expectation, changed, no result) fail too")
    g.add_argument("--junit", type=Path, default=None)

    m = sub.add_parser("merge", help="combine results from several hosts or shards into one document")
    m.add_argument("inputs", type=Path, nargs="+")
    m.add_argument("--out", "-o", type=Path, required=True)
    m.add_argument("--run-id", default=None, help="default: merged-<hash of the input run ids>")
    m.add_argument("--prefer", choices=[mergemod.WORSE, mergemod.LATEST], default=mergemod.WORSE,
                   help="which cell wins when runs disagree: the worse (hosts, shards; default) or the one from "
                   "the run started last (re-runs)")

    rm = sub.add_parser("remote", help="run the suite on a stack that is a machine of its own (stacks/*.yaml, "
                        "kind vm) and bring its run directory back, a shard to merge",
                        description="Boots the stack's machine, runs `vmparity run` there on its own dockerd and "
                        "writes RUN_DIR as a run on this machine would. Arguments after `--` go to that "
                        "`vmparity run` (scenario paths, --runtime, ...).")
    rm.add_argument("stack")
    rm.add_argument("--run-dir", type=Path, default=None, help="default: reports/runs/<stack>-<new run id>")
    rm.add_argument("--timeout", type=float, default=7200, help="seconds before the machine is stopped")
    rm.add_argument("--registry", type=Path, default=paths.REGISTRY)
    rm.add_argument("--no-render", action="store_true", help="only results.json")

    ref = sub.add_parser("reference", help="copy a run's results.json to reports/reference/results.json")
    ref.add_argument("run", type=Path, help="a run directory or its results.json")
    ref.add_argument("--allow-unclean", action="store_true",
                     help="accept a merged, dirty, unfinished or partial run; the document's header says which")
    ref.add_argument("--registry", type=Path, default=paths.REGISTRY)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(argv)
    if extra and args.command not in ("run", "remote"):
        parser().error("arguments after `--` are only for `vmparity run` and `vmparity remote`")
    try:
        if args.command == "run":
            return cmd_run(args, extra)
        if args.command == "remote":
            return cmd_remote(args, extra)
        handlers = {"render": cmd_render, "gate": cmd_gate, "diff": cmd_diff, "merge": cmd_merge,
                    "reference": cmd_reference}
        return handlers[args.command](args)
    except schema.SchemaError as e:
        raise SystemExit(f"vmparity {args.command}: {e}") from e


if __name__ == "__main__":
    sys.exit(main())
