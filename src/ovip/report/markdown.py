"""Enough Markdown for an experiment's results.md: headings, paragraphs, lists, fenced code and pipe tables.

Everything is HTML-escaped first; inline `code` and **bold** are the only inline marks kept.
"""

from __future__ import annotations

import html
import re


def inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    rows = [_cells(x) for x in lines if not re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", x)]
    if not rows:
        return ""
    head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(text: str) -> str:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(f"<pre>{html.escape(chr(10).join(lines[i + 1 : j]))}</pre>")
            i = j + 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(6, len(m.group(1)) + 2)  # below the report's own h2
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append("<li>" + inline(re.sub(r"^\s*[-*]\s+", "", lines[i])) + "</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        elif line.strip():
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(r"(#|```|\s*\||\s*[-*]\s)", lines[j]):
                j += 1
            out.append(f"<p>{inline(' '.join(lines[i : max(j, i + 1)]))}</p>")
            i = max(j, i + 1)
        else:
            i += 1
    return "\n".join(out)
