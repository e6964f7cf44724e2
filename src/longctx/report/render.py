"""Write a report as Markdown (PNG files beside it) and as one self-contained HTML page.

The HTML page has inline CSS and its images as base64 ``data:`` URIs: no external resource, no
JavaScript, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from longctx.report.plots import Plot
from longctx.report.tables import MISSING, Table


@dataclass
class Section:
    """A part of the report: an intro, tables, plots and notes."""

    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Everything the writers render."""

    title: str
    sections: list[Section]
    notes: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, Table]:
        """Every table by key."""
        return {t.key: t for s in self.sections for t in s.tables}

    @property
    def plots(self) -> dict[str, Plot]:
        """Every plot (drawn or skipped) by key."""
        return {p.key: p for s in self.sections for p in s.plots}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A GitHub-style pipe table with its title and notes."""
    right = [f != "text" for f in table.formats]
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    for row in table.formatted():
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines.append("")
    lines += [f"_{n}_  " for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def markdown_report(report: Report, image_dir: Path | None = None) -> str:
    """The report as Markdown; images are linked by file name (relative to ``image_dir``)."""
    out = [f"# {report.title}", ""]
    for section in report.sections:
        out += [f"## {section.title}", ""]
        if section.intro:
            out += [section.intro, ""]
        for table in section.tables:
            out += [table_markdown(table), ""]
        for plot in section.plots:
            if plot.path is None:
                out += [f"**{plot.title}**: {plot.note}", ""]
                continue
            name = plot.path.relative_to(image_dir) if image_dir else plot.path.name
            out += [f"![{plot.title}]({name})", ""]
            if plot.note:
                out += [f"_{plot.note}_", ""]
        out += [f"- {n}" for n in section.notes]
        if section.notes:
            out.append("")
    if report.notes:
        out += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(out)


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .4em 0 .3em; font-size: 0.9em; }
h3 { font-size: 1em; margin: 1.4em 0 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.missing { color: #999; text-align: center; }
tbody tr:nth-child(even) { background: #fafafa; }
p.note { font-size: 0.85em; color: #555; margin: .15em 0; }
p.skipped { font-style: italic; color: #a40; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
"""


def table_html(table: Table) -> str:
    """A table's title (``<h3>``), the ``<table>``, then its notes."""
    e = html.escape
    parts = [f"<h3>{e(table.title)}</h3>", f'<table id="table-{e(table.key)}">']
    parts.append("<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr>")
    parts.append("</thead><tbody>")
    for row in table.formatted():
        cells = []
        for text, fmt in zip(row, table.formats, strict=True):
            cls = "missing" if text == MISSING else ("num" if fmt != "text" else "")
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{e(text)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts += [f'<p class="note">{e(n)}</p>' for n in table.notes]
    return "\n".join(parts)


def image_data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_report(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS, images embedded)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{e(report.title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    for section in report.sections:
        parts.append(f"<section><h2>{e(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p>{e(section.intro)}</p>")
        parts += [table_html(t) for t in section.tables]
        for plot in section.plots:
            if plot.path is None:
                parts.append(f'<p class="skipped">{e(plot.title)}: {e(plot.note)}</p>')
                continue
            parts.append(
                f'<figure id="plot-{e(plot.key)}"><img src="{image_data_uri(plot.path)}" '
                f'alt="{e(plot.title)}"><figcaption>{e(plot.title)}'
                + (f". {e(plot.note)}" if plot.note else "")
                + "</figcaption></figure>"
            )
        parts += [f'<p class="note">{e(n)}</p>' for n in section.notes]
        parts.append("</section>")
    if report.notes:
        parts.append("<section><h2>Notes</h2><ul>")
        parts += [f"<li>{e(n)}</li>" for n in report.notes]
        parts.append("</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
