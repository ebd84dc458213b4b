"""The command line's options for a user's own table: which columns are categories or numbers,
missing values, constant columns, streaming and where a stream's scans run. Light, as
``options``: no Prefect, Keras or pandas."""
from __future__ import annotations

import argparse

from tasks.core.errors import OptionError
from tasks.core.params import MISSING


def add_table_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--categorical", metavar="COL,...", help="with --data: columns to encode as categories "
                                                              "(default: the columns that hold text)")
    sub.add_argument("--numeric", metavar="COL,...", help="with --data: columns to use as numbers, not categories")
    sub.add_argument("--missing", choices=MISSING, default="refuse",
                     help="with --data: missing feature values are refused, naming them, or imputed (the train "
                          "rows' median, or most frequent category; predict and export fill the same) "
                          "(default: %(default)s)")
    sub.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                     help="read, check, split, scale, train and score the table a row group at a time, never whole "
                          "in memory (default: when its values would take over 1 GiB; --no-stream: never)")
    sub.add_argument("--drop-constant", action="store_true",
                     help="with --data: drop the features that are constant on the train rows (default: keep "
                          "them, scaled by 1, and warn)")


DATA_RUNNERS = ("thread", "dask")  # where a streamed table's scans run (tasks/stages/fan_out.py)


def add_fan_out_options(sub: argparse.ArgumentParser) -> None:
    """--workers, --runner and --address of the flows that stream a table's data stages."""
    sub.add_argument("--workers", type=int, default=1,
                     help="a streamed table's checks and the scaler's moments read in this many parts side by "
                          "side, on --runner (default: %(default)s)")
    sub.add_argument("--runner", choices=DATA_RUNNERS, default="thread",
                     help="where those parts run: thread: threads of this process; dask: a local Dask cluster "
                          "of --workers processes, or the scheduler at --address, whose workers must reach "
                          "the store's files (default: %(default)s)")
    sub.add_argument("--address", metavar="tcp://HOST:PORT", help="with --runner dask: an existing scheduler")


def table_options(args: argparse.Namespace) -> dict:
    """How the flow reads a user's table (--categorical, --numeric, --missing, --drop-constant)."""
    def columns(text: str | None) -> list[str] | None:
        return [c.strip() for c in text.split(",") if c.strip()] if text else None

    return {"categorical": columns(args.categorical), "numeric": columns(args.numeric), "missing": args.missing,
            "drop_constant": args.drop_constant, "stream": args.stream}


def check_table_options(args: argparse.Namespace) -> None:
    """The table options name a user's table's columns: without --data they mean nothing."""
    given = [flag for flag, value in (("--categorical", getattr(args, "categorical", None)),
                                      ("--numeric", getattr(args, "numeric", None)),
                                      ("--missing impute", getattr(args, "missing", "refuse") == "impute"),
                                      ("--drop-constant", getattr(args, "drop_constant", False))) if value]
    if given and not getattr(args, "data", None):
        raise OptionError(f"{', '.join(given)}: for your own table only (give it with --data)")
