"""What the commands share: the one top-level error handler (:func:`run_cli`), the options of the
family mode (``forecast --family``, ``report --family``) and the help of a command with two modes,
and the progress bars of long work (:func:`progress`).

A stage's ``main(argv)`` hands its body to :func:`run_cli`: a :class:`pipeline.errors.CapcastError`
(bad input the user can fix) becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import math
import re
import sys

from pipeline.config import MAX_BOOTSTRAP
from pipeline.errors import CapcastError


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")  # -2, -0.5, -2e12


class Parser(argparse.ArgumentParser):
    """argparse's parser with the commands' errors: one line (``error: ...``) naming the fix, exit
    status 2, no usage block; and a negative number in scientific notation (``--tokens -2e12``)
    read as the option's value, so that the command's own check says what is wrong with it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER  # argparse's own knows -2 and -0.5, not -2e12

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message}; see {self.prog} --help\n")


def run_cli(func, argv) -> int:
    """Run a stage's body; turn known input errors into one-line messages, not tracebacks.

    Besides :class:`CapcastError`: an ``OSError`` (a folder where a file goes, no permission, a
    full disk) names its file and the fix; ``MemoryError`` and ``RecursionError`` say what to make
    smaller; a parse error of a file (JSON, YAML, CSV, Parquet) says which kind.  Each is one line
    on stderr and exit status 2."""
    try:
        return func(argv) or 0
    except CapcastError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(os_error(exc))
    except MemoryError:
        return _fail("out of memory; make the work smaller: fewer bootstrap resamples (--bootstrap, n_bootstrap, "
                     f"at most {MAX_BOOTSTRAP}), fewer rows or targets")
    except RecursionError:
        return _fail("an input is nested too deeply to read (a JSON or YAML file, or a query, thousands of "
                     "levels deep); flatten it")
    except Exception as exc:
        message = parse_error(exc)
        if message is None:
            raise
        return _fail(message)


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


_OS_FIXES = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free space or write elsewhere",
    errno.EACCES: "permission denied; choose a place you may write (or read)",
    errno.EPERM: "not permitted; choose a place you may write (or read)",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "it already exists (as a file where a folder goes?); choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def os_error(exc: OSError) -> str:
    """'PATH: what went wrong; the fix' for an OSError (without its traceback)."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    fix = _OS_FIXES.get(exc.errno, f"{exc.strerror or type(exc).__name__}; check the path and the disk")
    return f"{where or 'a file'}: {fix} ({exc.strerror or exc})"


def parse_error(exc: Exception) -> str | None:
    """One line for a file that could not be parsed (JSON, YAML, CSV, Parquet, text encoding), else None."""
    import json

    kinds = [(json.JSONDecodeError, "malformed JSON"), (UnicodeDecodeError, "not UTF-8 text; save it as UTF-8")]
    for module, names, what in (("yaml", ("YAMLError",), "malformed YAML"),
                                ("pandas.errors", ("ParserError", "EmptyDataError"), "not a readable CSV table"),
                                ("pyarrow.lib", ("ArrowException",), "not a readable Parquet table")):
        mod = sys.modules.get(module)  # only what is loaded can have raised
        kinds += [(getattr(mod, n), what) for n in names if mod is not None and hasattr(mod, n)]
    for kind, what in kinds:
        if isinstance(exc, kind):
            return f"{what} ({' '.join(str(exc).split())[:200]})"
    return None


def whole(text: str) -> int:
    """argparse type of a count: a whole number, also written as 1e3 (bounds are checked after)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


# ------------------------------------------------------------------- the family mode
def family_mode(argv) -> bool:
    """Whether a forecast/report command line asks for a family forecast (``--family``), not the DVC stage."""
    argv = sys.argv[1:] if argv is None else argv
    return any(a == "--family" or a.startswith("--family=") for a in argv)


def add_family_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the family mode, which the forecast and report commands share."""
    from pipeline.laws import METHODS

    p.add_argument("--scores", required=True, metavar="FILE", help="CSV or Parquet in the scores-table schema")
    p.add_argument("--family", required=True, metavar="NAME", help="the family to forecast (its rows are the ladder)")
    p.add_argument("--params", required=True, metavar="N[,N...]",
                   help="target size(s) N, comma-separated: 7e9 or 7e9,13e9")
    p.add_argument("--tokens", metavar="D[,D...]",
                   help="target training tokens D, comma-separated (the i-th with the i-th size)")
    p.add_argument("--tokens-per-param", type=float, metavar="R", help="instead of --tokens: D = R x N (e.g. 20)")
    p.add_argument("--tasks", metavar="TASK[,TASK...]",
                   help="comma-separated tasks (default: every task of the family with --metric)")
    p.add_argument("--metric", default="acc", help="the accuracy to forecast (default acc)")
    methods = sorted(m for m in METHODS if m not in ("auto", "link", "observational"))
    p.add_argument("--method", default="auto", choices=["auto", *methods],
                   help="a method, or auto (default): the candidates weighted by what other ladders taught, with an "
                        "interval calibrated on their errors; link and observational need the target model's own "
                        "scores, which a forecast lacks")
    p.add_argument("--calibration", metavar="FILE", help="the ladder forecast table auto and the calibrated intervals "
                   "are learned from (default: the repository's data/calibration/ladder_forecasts.csv.gz)")
    p.add_argument("--loss", metavar="TASK:METRIC",
                   help="two_step: TASK:METRIC of the loss it goes through (default: the task's own bpb)")
    p.add_argument("--chance", action="append", metavar="TASK=LEVEL[,...]",
                   help="random-guess level of a task the table does not give (repeatable)")
    p.add_argument("--suite", help="the suite of the family's rows, where it has several")
    p.add_argument("--num-fewshot", "--num_fewshot", type=int, metavar="N", help="shots, where a task has rows with several")
    p.add_argument("--level", type=float, default=0.9, help="prediction-interval level (default 0.9)")
    p.add_argument("--bootstrap", type=whole, default=200,
                   help=f"bootstrap resamples behind each interval (at most {MAX_BOOTSTRAP})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (default 0)")


def help_asked(argv) -> bool:
    """Whether a command line asks for help (``-h``/``--help`` before any ``--``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = argv[:argv.index("--")] if "--" in argv else argv
    return any(a in ("-h", "--help") for a in argv)


def both_modes_help(stage: argparse.ArgumentParser, family: argparse.ArgumentParser) -> str:
    """The help of a command with two modes (forecast, report): the DVC-stage mode's, then the
    family mode's (``--family``)."""
    return f"{stage.format_help()}\n{family.format_help()}"


def two_modes(argv, stage_parser, family_parser, stage_main, family_main) -> int:
    """A command with two modes (forecast, report): ``family_main(argv)`` with ``--family`` (one
    family of any table at any (N, D), no params.yaml), both modes' help with ``--help``, else
    ``stage_main`` of the DVC-stage mode's parsed arguments."""
    if family_mode(argv):
        return family_main(argv)
    if help_asked(argv):
        print(both_modes_help(stage_parser(), family_parser()))
        return 0
    return stage_main(stage_parser().parse_args(argv))


def check_level_and_bootstrap(args) -> None:
    """--level inside (0, 1), --bootstrap within 0..MAX_BOOTSTRAP: one-line errors."""
    if not 0 < args.level < 1:
        raise CapcastError(f"--level must be between 0 and 1, got {args.level}")
    if not 0 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise CapcastError(f"--bootstrap must be between 0 and {MAX_BOOTSTRAP}, got {args.bootstrap}")


def calibration_for(method: str, path: str | None, default=None):
    """The ladder calibration (:class:`pipeline.ladders.calibration.Source`) of --calibration
    ``path``, else ``default``, else the committed one; a one-line error where ``method`` is auto
    and its table is missing."""
    from pipeline.ladders.calibration import Source

    calibration = Source(path) if path else default or Source()
    if method == "auto" and not calibration.path.exists():
        raise CapcastError(f"--method auto: the ladder calibration table {calibration.path} is missing; write it with "
                           "`python -m pipeline ladders`, pass --calibration FILE, or name a --method")
    return calibration


def family_request(args):
    """The table (with --chance applied) and the :class:`pipeline.forecasting.family.Request`, from parsed
    arguments."""
    from pipeline import scores
    from pipeline.forecasting.family import Request
    from pipeline.laws.data import Metric

    check_level_and_bootstrap(args)
    table = scores.with_chance(scores.read(args.scores), scores.parse_chance(args.chance))
    if args.loss:
        Metric.parse(args.loss, "--loss")
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    calibration = calibration_for(args.method, args.calibration)
    req = Request(args.family, family_targets(args.params, args.tokens, args.tokens_per_param), tasks, args.metric,
                  args.method, args.loss, args.suite, args.num_fewshot, args.level, args.bootstrap, args.seed,
                  source=str(args.scores), calibration=calibration)
    return table, req


def numbers(text: str, flag: str) -> list[float]:
    """``7e9,13e9`` -> [7e9, 13e9]; each > 0."""
    out = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise CapcastError(f"{flag} {text!r}: give numbers > 0, comma-separated (e.g. {flag} 7e9,13e9)")
        out.append(value)
    return out


def family_targets(params: str, tokens: str | None, tokens_per_param: float | None) -> tuple:
    """(N, D) pairs: the i-th N with the i-th D; one D (or one N) goes with every N (or D)."""
    n = numbers(params, "--params")
    if (tokens is None) == (tokens_per_param is None):
        raise CapcastError("give the training tokens of the target(s): --tokens D[,D...] or --tokens-per-param R")
    if tokens_per_param is not None:
        if not (math.isfinite(tokens_per_param) and tokens_per_param > 0):
            raise CapcastError(f"--tokens-per-param must be > 0, got {tokens_per_param}")
        return tuple((x, x * tokens_per_param) for x in n)
    d = numbers(tokens, "--tokens")
    if len(n) != len(d) and 1 not in (len(n), len(d)):
        raise CapcastError(f"--params gives {len(n)} sizes and --tokens {len(d)} token counts; give as many of each "
                           "(the i-th size trains on the i-th count), or one of either")
    k = max(len(n), len(d))
    return tuple((n[i % len(n)], d[i % len(d)]) for i in range(k))


# ------------------------------------------------------------------------------------ progress
class Bars:
    """The progress bars of one piece of long work: ``bars(total)`` is a tqdm bar on stderr with
    ``update()`` and ``close()`` when stderr is a terminal, else one that shows nothing
    (:class:`pipeline.parallel.Quiet`), so committed outputs and logs never change.  The domain
    packages take it as their ``progress`` argument (they never import this module).  As a
    context manager it closes every bar it made, also when the work stops on an error (so the
    error starts a line of its own)::

        with progress("backtest", "fold") as bars:
            fork_map(job, folds, processes, progress=bars)
    """

    def __init__(self, desc: str, unit: str = "it"):
        self.desc, self.unit, self.bars = desc, unit, []

    def __call__(self, total: int | None = None):
        if not sys.stderr.isatty():
            from pipeline.parallel import Quiet

            return Quiet()
        from tqdm import tqdm

        bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=False, dynamic_ncols=True)
        self.bars.append(bar)
        return bar

    def __enter__(self) -> "Bars":
        return self

    def __exit__(self, *exc) -> None:
        for bar in self.bars:
            bar.close()


def progress(desc: str, unit: str = "it") -> Bars:
    """The progress bars of one piece of long work, labelled ``desc``, counting ``unit`` (see :class:`Bars`)."""
    return Bars(desc, unit)
