"""Reports over evaluation run folders: tables, plots, Markdown and a self-contained HTML page.

Usage::

    from longctx.report import write_report
    write_report(["runs/a", "runs/b"], "runs/report")   # -> runs/report/report.html
"""

from longctx.report.build import build_report, write_report
from longctx.report.runs import (
    Run,
    RunFolderError,
    load_run,
    load_runs,
    parse_base_pairs,
    resolve_bases,
)
from longctx.report.tables import MISSING, Table

__all__ = [
    "MISSING",
    "Run",
    "RunFolderError",
    "Table",
    "build_report",
    "load_run",
    "load_runs",
    "parse_base_pairs",
    "resolve_bases",
    "write_report",
]
