"""The ``invlimits`` command line.

Every subcommand takes ``--out DIR``, writes ``DIR/results.json`` (and ``DIR/report.md``) and
prints where it wrote.  Each capability lives in one module of :mod:`empirics.sections`, which
exposes ``add_arguments(parser)`` and ``run(args)``; ``run`` returns a list of
:class:`empirics.report.Section` (or a ``(sections, extra)`` pair whose ``extra`` dict becomes
top-level keys of ``results.json``).  ``invlimits verify`` runs the sections in
:data:`VERIFY_ORDER` — theory, reduction, attack (the optimality benchmark) and defenses (the fast
battery with a small CEM experiment) — each adapted by its ``verify_args``.

Building the parser imports every section module for its ``add_arguments``; section modules import
torch only inside the functions that run, so ``invlimits theory`` never imports torch.

Before any work, ``--out`` is checked: it must be (or be creatable as) a writable directory, and
a directory whose ``results.json`` came from another command is refused unless ``--force``.
(``invlimits records DIR`` only reads a folder: a section module with ``STANDALONE = True`` gets
no common options and returns its exit status from ``main(args)``.)

Help: each default is printed once (an option's help that states its default itself gets no
second one; ``None`` and switches get none), ``--quick`` is listed only by the commands that
accept it (a section module's ``QUICK`` help text; the others refuse it with a reason, unlisted),
and every command's help ends with examples (its module's ``EXAMPLES``).  ``--quiet`` turns off
the step lines and progress bars on stderr (:mod:`empirics.progress`; bars only on a terminal).
Finished runs are records in ``DIR/records`` (:mod:`empirics.store`), keyed by their full
configuration: the same command reuses them, a changed setting runs afresh.  Figures a previous
run of the command left in ``DIR`` that this run does not produce are removed.

The exit status is 0 when every check passed, 1 when a check failed, 2 on a usage error (bad
input, or training that diverged) and 130 when interrupted (Ctrl-C): finished models and
checkpoints stay in ``DIR`` and the same command resumes from them.  The command line selects
matplotlib's non-interactive Agg backend (unless ``MPLBACKEND`` says otherwise) and sets torch's
CPU threads (:mod:`empirics.threads`); the library does neither.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .progress import Progress
from .report import Section, section_text, write_report, write_results
from .store import package_version
from .threads import configure_threads

__all__ = ["COMMANDS", "VERIFY_ORDER", "build_parser", "prepare_out", "main"]

#: subcommand -> (module in empirics.sections, one-line help).  Order is the order of `verify`.
COMMANDS: dict[str, tuple[str, str]] = {
    "theory": ("theory_section", "Thm 1 / Thm 2 battery against exact and Monte-Carlo truth"),
    "reduction": ("reduction_section", "MAX-E3SAT(B) -> two-layer ReLU inversion, checked by SAT/MaxSAT"),
    "attack": ("attack_section", "inversion attacks: optimality vs exact MMSE, attacks on a dataset"),
    "train": ("train_section", "train a split model (optionally with defenses) and save a checkpoint"),
    "defenses": ("defenses_section", "entropy-vs-MSE sweep and defense table (CEM beside baselines)"),
    "check-defense": ("check_defense_section", "check your own encoder (MODULE:FUNCTION) against the bounds"),
    "bench": ("bench_section", "training-step cost of each defense with and without CEM"),
    "sweep": ("sweep_section", "run a grid of experiments from a TOML spec: local processes, Ray or SLURM"),
    "records": ("records_section", "read a folder of run records: counts, integrity check, CSV export"),
}

#: sections `verify` runs (each module must define `run`; `verify_args(args)` may adapt arguments)
VERIFY_ORDER = ["theory", "reduction", "attack", "defenses"]


def _load(name: str):
    module, _ = COMMANDS[name]
    try:
        return importlib.import_module(f"empirics.sections.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"empirics.sections.{module}":
            return None
        raise


#: commands that never import torch (the rest get their CPU threads set before they run)
TORCH_FREE = {"theory", "reduction"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each default printed once: appended only to a help that does not state one itself, and never
    for ``None`` or a switch; descriptions and the examples epilog keep their line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.default == [] \
                or action.option_strings == [] or isinstance(action, argparse._StoreConstAction):
            return text
        return text + " (default: %(default)s)"


VERIFY_EXAMPLES = """examples:
  invlimits verify --out runs/verify                 # the main job, a few minutes on 2 CPU cores
  invlimits verify --quick --out runs/verify-quick   # smaller sizes, same checks (about 1 min)
  invlimits verify --skip reduction --out runs/v     # every section but one"""


def _add_common(p: argparse.ArgumentParser, default_out: str, quick: str | None) -> None:
    p.add_argument("--out", type=Path, default=Path(default_out), help=f"output directory (default: {default_out})")
    p.add_argument("--seed", type=int, default=0, help="master random seed (default: %(default)s)")
    # --quick is listed only where it is accepted; elsewhere it stays parseable, so that the refusal
    # says why in one line (the command's size is set otherwise) instead of argparse's usage text
    p.add_argument("--quick", action="store_true", help=quick if quick else argparse.SUPPRESS)
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda:0 ... "
                                                    "(default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="write into an --out directory that holds another command's results")
    p.add_argument("--quiet", action="store_true",
                   help="nothing on stderr while it runs (otherwise: one line per step, and progress bars when "
                        "stderr is a terminal)")


def _version() -> str:
    return package_version()


def build_parser() -> argparse.ArgumentParser:
    """The ``invlimits`` argument parser (imports every section for its options, never torch)."""
    parser = argparse.ArgumentParser(
        prog="invlimits",
        description="Executable checks of model-inversion limits in split inference "
                    "(CEM Thms 1-2, MixCon Thm B.10, attacks and defenses).",
        epilog="Run `invlimits COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"invlimits {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    v = sub.add_parser("verify", help="run every section on embedded defaults; writes report.md",
                       description="Run the theory, reduction, attack and defenses sections at their default sizes "
                                   "and write one report (report.md, results.json, figures, records/).",
                       epilog=VERIFY_EXAMPLES, formatter_class=HelpFormatter)
    _add_common(v, "runs/verify", "smaller Monte-Carlo sizes and models, same checks (refused with --preset paper)")
    v.add_argument("--preset", choices=["default", "paper"], default="default",
                   help="'paper': paper-scale CIFAR-10 run (needs local data and a GPU)")
    v.add_argument("--cifar-root", type=Path, default=None,
                   help="folder containing cifar-10-batches-py (for --preset paper)")
    v.add_argument("--skip", action="append", default=[], choices=VERIFY_ORDER,
                   help="skip a section (repeatable)")
    for name, (_, help_) in COMMANDS.items():
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip().split("\n\n")[0],
                           epilog=getattr(mod, "EXAMPLES", None), formatter_class=HelpFormatter)
        if not getattr(mod, "STANDALONE", False):
            _add_common(p, f"runs/{name}", getattr(mod, "QUICK_HELP", None))
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    return parser


def _defaults_for(name: str, mod, common: argparse.Namespace) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    if hasattr(mod, "add_arguments"):
        mod.add_arguments(p)
    ns = p.parse_args([])
    for k in ("out", "seed", "quick", "device", "force", "quiet", "progress"):
        setattr(ns, k, getattr(common, k))
    ns.verify = True
    return ns


def _normalise(result) -> tuple[list[Section], dict]:
    if isinstance(result, tuple):
        sections, extra = result
    else:
        sections, extra = result, {}
    if isinstance(sections, Section):
        sections = [sections]
    return list(sections), dict(extra or {})


def _run_verify(args: argparse.Namespace) -> tuple[list[Section], dict]:
    if args.preset == "paper":
        mod = importlib.import_module("empirics.sections.paper_preset")
        return _normalise(mod.run(args))
    sections: list[Section] = []
    extra: dict = {}
    names = [n for n in VERIFY_ORDER if n not in args.skip]
    for i, name in enumerate(names, 1):
        mod = _load(name)
        if mod is None:
            continue
        ns = _defaults_for(name, mod, args)
        if hasattr(mod, "verify_args"):
            mod.verify_args(ns)
        args.progress.step(f"[{i}/{len(names)}] {name} ...")
        t0 = time.perf_counter()
        got, ex = _normalise(mod.run(ns))
        for s in got:
            if not s.seconds:
                s.seconds = time.perf_counter() - t0
            print(section_text(s), flush=True)
        sections += got
        extra.update(ex)
    return sections, extra


def prepare_out(out: Path, command: str, *, force: bool = False) -> Path:
    """Check ``--out`` before any work: a writable directory (created if absent) that holds no
    other command's results (unless ``force``).  Every problem is one ``ValueError``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out: cannot create {out}: a part of that path is a file, not a directory") from None
    except PermissionError:
        raise ValueError(f"--out: cannot create {out}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError:
        raise ValueError(f"--out: {out} is not writable") from None
    res = out / "results.json"
    if res.exists() and not force:
        try:
            prev = json.loads(res.read_text()).get("command")
        except (OSError, ValueError, AttributeError):
            raise ValueError(f"--out: {res} is not a results file of invlimits; use another --out or --force") from None
        if prev != command:
            raise ValueError(f"--out: {out} holds results of `invlimits {prev}`; use another --out, or --force "
                             f"to replace them")
    return out


def _previous_figures(out: Path) -> list[str]:
    try:
        prev = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return []
    figs = list(prev.get("figures") or [])
    for sec in (prev.get("sections") or {}).values():
        if isinstance(sec, dict):
            figs += list(sec.get("figures") or [])
    return [f for f in figs if isinstance(f, str)]


def _remove_stale(out: Path, old: list[str], new: list[str]) -> None:
    """Delete figures a previous run wrote into ``out`` that this run did not produce."""
    keep = {Path(f).resolve() for f in new}
    root = out.resolve()
    for f in old:
        p = Path(f).resolve()
        if p not in keep and p.suffix.lower() in (".png", ".pdf", ".svg") and root in p.parents and p.is_file():
            p.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run ``invlimits`` with ``argv``; the exit status (0 pass, 1 a check failed, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = _load(args.command) if args.command != "verify" else None
    if getattr(mod, "STANDALONE", False):
        try:
            return mod.main(args)
        except ValueError as exc:
            print(f"invlimits {args.command}: error: {exc}", file=sys.stderr)
            return 2
    args.progress = Progress.for_cli(quiet=args.quiet, prefix=f"invlimits {args.command}")
    if "MPLBACKEND" not in os.environ:
        import matplotlib  # deferred: the backend is chosen before any figure, by the command line only
        matplotlib.use("Agg")
    try:
        out = prepare_out(args.out, args.command, force=getattr(args, "force", False))
    except ValueError as exc:
        print(f"invlimits {args.command}: error: {exc}", file=sys.stderr)
        return 2
    args.out = out
    old_figures = _previous_figures(out)
    if args.command not in TORCH_FREE:
        configure_threads()
    t0 = time.perf_counter()
    try:
        if args.command == "verify":
            sections, extra = _run_verify(args)
        else:
            sections, extra = _normalise(mod.run(args))
            for s in sections:
                if not s.seconds and len(sections) == 1:  # the header's time: the command's, not 0.0 s
                    s.seconds = time.perf_counter() - t0
                print(section_text(s), flush=True)
    except ValueError as exc:  # bad user input: one clear line, no traceback
        print(f"invlimits {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # training diverged (non-finite loss): say so, no traceback
        print(f"invlimits {args.command}: error: training diverged: {exc} (lower the learning rate or the "
              f"defense strength)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninvlimits {args.command}: interrupted; finished models and checkpoints are kept in {out} — "
              f"run the same command again to resume", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - t0
    res = write_results(out, args.command, argv, sections, seconds, extra)
    rep = write_report(out, f"invlimits {args.command}", sections, seconds)
    _remove_stale(out, old_figures, [f for s in sections for f in s.figures])
    ok = all(s.passed for s in sections)
    n = sum(len(s.checks) for s in sections)
    nfail = sum(not c.passed for s in sections for c in s.checks)
    for s in sections:
        if s.headline:
            print(f"\n{s.title}: {s.headline}")
    if n:
        print(f"\n{'PASS' if ok else 'FAIL'}: {n - nfail}/{n} checks passed in {seconds:.1f} s.")
    else:
        print(f"\nDone in {seconds:.1f} s (this run has no pass/fail checks; see the tables).")
    nrec = len(json.loads(res.read_text()).get("records", []))
    print(f"wrote {res}" + (f" ({nrec} run records; all records in {out / 'records'})" if nrec else ""))
    print(f"wrote {rep}")
    for s in sections:
        for f in s.figures:
            print(f"wrote {f}")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
