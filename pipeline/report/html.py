"""Our Markdown reports as standalone HTML, so that `snakemake --report` shows their tables.

Covers what our writers emit: ``#`` headings, paragraphs, ``-`` lists, pipe tables, ``code``
and ``**bold**``. Everything is HTML-escaped first.
"""

from __future__ import annotations

import html
import re

STYLE = (
    "body{font-family:sans-serif;font-size:14px;margin:1.5em;max-width:100%}"
    "table{border-collapse:collapse;margin:0.6em 0;font-size:12px}"
    "th,td{border:1px solid #bbb;padding:2px 6px;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{background:#eee}"
    "code{background:#f3f3f3;padding:0 2px}"
)


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<i>\1</i>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str, title: str = "") -> str:
    """A standalone HTML page of ``text`` (our Markdown subset)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|?\s*:?-{3,}.*", lines[i + 1].strip()):
            flush()
            head = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
            continue
        match = re.match(r"(#{1,6})\s+(.*)", stripped)
        if match:
            flush()
            level = len(match[1])
            out.append(f"<h{level}>{_inline(match[2])}</h{level}>")
        elif stripped.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif not stripped:
            flush()
        else:
            paragraph.append(stripped)
        i += 1
    flush()
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}<style>{STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
