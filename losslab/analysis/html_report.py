"""One self-contained HTML page: generic sections with text, settings, tables, images, links.

Cells of more than ``WRAP_AT`` characters (a candidate's definition) wrap inside their column
while the table's box scrolls sideways, so no text is cut off. The page needs nothing but itself: the CSS and a small script are inline, images are
``data:`` URIs, and a Content-Security-Policy forbids loading anything else. Every piece of
text is HTML-escaped and only ``http``, ``https`` and ``file`` URLs become links.

The script makes tables sortable (click a header), records the page's errors (``console.error``,
uncaught exceptions, failed loads, CSP violations) as a JSON list in ``<html data-errors>``, and
after ``load`` sets ``<body data-ready="1" data-images="loaded/total">``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from losslab import __version__

__all__ = [
    "HtmlImage",
    "HtmlSection",
    "HtmlTable",
    "is_safe_url",
    "render_report",
    "write_report",
]

SAFE_SCHEMES = frozenset({"http", "https", "file"})
WRAP_AT = 60  # a cell of more characters wraps (class "wrap") instead of widening its table
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_NUMBER = re.compile(r"^\s*[-+\u2212]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class HtmlTable:
    """A table; ``rows`` hold formatted cell text, ``classes``/``links`` are optional per cell."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    classes: list[list[str]] | None = None  # "better", "worse", "best", "muted", ""
    note: str = ""
    links: list[list[str]] | None = None  # URL per cell, "" for none


@dataclass
class HtmlImage:
    """A PNG image (its bytes) with a title and an optional caption."""

    title: str
    png: bytes
    caption: str = ""


@dataclass
class HtmlSection:
    """A section of the page; every part is optional except the title."""

    title: str
    text: str = ""  # plain text; blank lines separate paragraphs
    settings: list[tuple[str, str]] = field(default_factory=list)
    tables: list[HtmlTable] = field(default_factory=list)
    images: list[HtmlImage] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url)
    code: str = ""  # preformatted text


_CSS = """
:root{--fg:#1d2330;--muted:#6b7280;--line:#d8dde6;--zebra:#f5f7fa;--head:#e9edf3;
--better:#11703a;--worse:#b42318;--accent:#1f5fae}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:1.5rem 2rem 3rem;color:var(--fg);background:#fff;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:1.7rem;margin:.2rem 0}h2{font-size:1.3rem;margin:2rem 0 .6rem;
border-bottom:1px solid var(--line);padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
.subtitle{color:var(--muted);margin:0 0 1rem}a{color:var(--accent)}
nav.toc{background:var(--zebra);border:1px solid var(--line);border-radius:6px;padding:.5rem 1rem;
display:inline-block;min-width:18rem}nav.toc ol{margin:.2rem 0;padding-left:1.4rem}
dl.settings{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1.2rem;margin:.5rem 0}
dl.settings dt{font-weight:600}dl.settings dd{margin:0;word-break:break-word}
.table-wrap{overflow:auto;max-height:80vh;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td.num,th.num{text-align:right}th{position:sticky;top:0;background:var(--head);z-index:1;
cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B4"}
th[aria-sort=descending]::after{content:" \\25BE"}tbody tr:nth-child(even){background:var(--zebra)}
td.better{color:var(--better)}td.worse{color:var(--worse)}td.best{font-weight:700}
td.muted{color:var(--muted)}td.wrap{white-space:normal;min-width:22rem;max-width:48rem;
overflow-wrap:anywhere}p.note,figcaption,.footer{color:var(--muted);font-size:.88rem}
figure{margin:1rem 0}img{max-width:100%;height:auto}
pre{background:var(--zebra);border:1px solid var(--line);border-radius:6px;padding:.7rem;
overflow:auto;font-size:.85rem}ul.links{padding-left:1.2rem}
.footer{margin-top:3rem;border-top:1px solid var(--line);padding-top:.5rem}
@media print{body{max-width:none;padding:0;font-size:10pt}nav.toc{display:none}
.table-wrap{overflow:visible;max-height:none;border:none}th{position:static}
a{color:inherit;text-decoration:none}h2{break-after:avoid}figure,tr,pre{break-inside:avoid}
pre{white-space:pre-wrap}}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var errors = [];
  function record(message) {
    errors.push(String(message).slice(0, 500));
    document.documentElement.setAttribute("data-errors", JSON.stringify(errors));
  }
  var consoleError = console.error;
  console.error = function () {
    record(Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target !== window && target.tagName) {
      record("failed to load <" + target.tagName.toLowerCase() + ">");
    } else {
      record(event.message || "error");
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    record("Unhandled rejection: " + (reason && reason.message ? reason.message : reason));
  });
  document.addEventListener("securitypolicyviolation", function (event) {
    record("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
  });
  var NUMBER = /^\s*[-+\u2212]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?/;
  function sortKey(cell) {
    var text = cell ? cell.textContent.trim() : "";
    var match = NUMBER.exec(text);
    return {n: match ? parseFloat(match[0].replace("\u2212", "-")) : null, t: text};
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) { return a.n - b.n; }
    if (a.n !== null) { return -1; }
    if (b.n !== null) { return 1; }
    return a.t.localeCompare(b.t);
  }
  function sortBy(th) {
    var table = th.closest("table");
    var body = table ? table.tBodies[0] : null;
    if (!body) { return; }
    var column = th.cellIndex;
    var direction = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var headers = th.parentNode.cells;
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
    var rows = Array.prototype.map.call(body.rows, function (row, index) {
      return {row: row, index: index, key: sortKey(row.cells[column])};
    });
    rows.sort(function (a, b) { return direction * compare(a.key, b.key) || a.index - b.index; });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }
  function onActivate(event) {
    if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") { return; }
    var target = event.target;
    var th = target && target.closest ? target.closest("th[data-sortable]") : null;
    if (th) { event.preventDefault(); sortBy(th); }
  }
  document.addEventListener("click", onActivate);
  document.addEventListener("keydown", onActivate);
  window.addEventListener("load", function () {
    var images = document.images, loaded = 0;
    for (var i = 0; i < images.length; i++) { if (images[i].naturalWidth > 0) { loaded++; } }
    document.body.dataset.images = loaded + "/" + images.length;
    document.body.dataset.ready = "1";
  });
})();
"""


def _sha256(text: str) -> str:
    """The CSP source expression ``'sha256-…'`` of an inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_CSP = (
    f"default-src 'none'; img-src data:; style-src {_sha256(_CSS)}; "
    f"script-src {_sha256(_SCRIPT)}; base-uri 'none'; form-action 'none'"
)


def _e(text: object) -> str:
    """HTML-escape text for element content and (double-quoted) attribute values."""
    return escape(str(text), quote=True)


def is_safe_url(url: str) -> bool:
    """Whether ``url`` may go into an ``href``: an http, https or file URL, no control characters."""
    stripped = url.strip()
    if not stripped or any(ord(c) < 0x20 or ord(c) == 0x7F for c in stripped):
        return False
    match = _SCHEME.match(stripped)
    return bool(match) and match.group(1).lower() in SAFE_SCHEMES


def _link(text: str, url: str) -> str:
    """An ``<a>`` opening in a new tab, or the escaped text alone when the URL is unsafe/empty."""
    if not url or not is_safe_url(url):
        return _e(text)
    return f'<a href="{_e(url.strip())}" target="_blank" rel="noopener">{_e(text)}</a>'


def _slug(title: str, used: set[str]) -> str:
    """A unique id derived from ``title`` (lower-case words joined by ``-``)."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    used.add(candidate)
    return candidate


def _is_number(text: str) -> bool:
    """Whether a cell starts with a number (it is then right-aligned)."""
    return bool(_NUMBER.match(text))


def _check_grid(table: HtmlTable, name: str, grid: list[list[str]] | None) -> None:
    """Raise ``ValueError`` unless ``grid`` (classes or links) has the shape of the rows."""
    if grid is None:
        return
    if len(grid) != len(table.rows) or any(len(g) != len(r) for g, r in zip(grid, table.rows)):
        raise ValueError(f"table {table.title!r}: {name} must have the shape of rows")


def _render_table(table: HtmlTable) -> str:
    """A titled, sortable table with optional per-cell classes, links and a note."""
    width = len(table.headers)
    for i, row in enumerate(table.rows):
        if len(row) != width:
            raise ValueError(
                f"table {table.title!r}: row {i} has {len(row)} cells, headers {width}"
            )
    _check_grid(table, "classes", table.classes)
    _check_grid(table, "links", table.links)
    numeric = [
        j > 0
        and any(_is_number(r[j]) for r in table.rows)
        and all(_is_number(r[j]) or not r[j].strip() for r in table.rows)
        for j in range(width)
    ]
    num = ' class="num"'
    head = "".join(
        f'<th scope="col" data-sortable="1" tabindex="0"{num if numeric[j] else ""}>{_e(h)}</th>'
        for j, h in enumerate(table.headers)
    )
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, text in enumerate(row):
            css = (table.classes[i][j].split() if table.classes else []) + (
                ["num"] if j > 0 and _is_number(text) else []
            )
            if len(text) > WRAP_AT:  # long text wraps in its cell; the table box scrolls
                css.append("wrap")
            attr = f' class="{_e(" ".join(css))}"' if css else ""
            content = _link(text, table.links[i][j]) if table.links else _e(text)
            cells.append(f"<td{attr}>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [f"<h3>{_e(table.title)}</h3>"] if table.title else []
    parts.append(
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    if table.note:
        parts.append(f'<p class="note">{_e(table.note)}</p>')
    return "\n".join(parts)


def _render_image(image: HtmlImage) -> str:
    """A figure holding the PNG as a ``data:`` URI."""
    if not bytes(image.png).startswith(PNG_SIGNATURE):
        raise ValueError(f"image {image.title!r}: not PNG bytes")
    data = base64.b64encode(bytes(image.png)).decode("ascii")
    caption = " — ".join(_e(t) for t in (image.title, image.caption) if t)
    figcaption = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(image.title)}">{figcaption}</figure>'


def _render_section(section: HtmlSection, section_id: str) -> str:
    """One ``<section>``: heading, paragraphs, settings, tables, images, links, code."""
    parts = [f'<section id="{_e(section_id)}">', f"<h2>{_e(section.title)}</h2>"]
    for paragraph in re.split(r"\n\s*\n", section.text.strip()):
        if paragraph.strip():
            parts.append(f"<p>{_e(paragraph.strip())}</p>")
    if section.settings:
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in section.settings)
        parts.append(f'<dl class="settings">{items}</dl>')
    parts.extend(_render_table(t) for t in section.tables)
    parts.extend(_render_image(i) for i in section.images)
    if section.links:
        items = "".join(
            f"<li>{_link(text, url) if is_safe_url(url) else _e(f'{text} ({url})')}</li>"
            for text, url in section.links
        )
        parts.append(f'<ul class="links">{items}</ul>')
    if section.code:
        parts.append(f"<pre><code>{_e(section.code)}</code></pre>")
    parts.append("</section>")
    return "\n".join(parts)


def render_report(
    title: str,
    sections: Sequence[HtmlSection],
    *,
    subtitle: str = "",
    generated: datetime | None = None,
) -> str:
    """The whole page as a string; ``generated`` (default: now) is shown in UTC in the footer."""
    used = {"toc", "top", "footer"}
    ids = [_slug(s.title, used) for s in sections]
    when = (generated or datetime.now(timezone.utc)).astimezone(timezone.utc)
    toc = ""
    if sections:
        items = "".join(
            f'<li><a href="#{_e(i)}">{_e(s.title) or "(untitled)"}</a></li>'
            for s, i in zip(sections, ids)
        )
        toc = f'<nav class="toc" id="toc"><strong>Contents</strong><ol>{items}</ol></nav>'
    sub = f'<p class="subtitle">{_e(subtitle)}</p>' if subtitle else ""
    body = "\n".join(_render_section(s, i) for s, i in zip(sections, ids))
    footer = f"generated by losslab {_e(__version__)} on {when:%Y-%m-%d %H:%M:%S} UTC"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">
<meta name="generator" content="losslab {_e(__version__)}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script>{_SCRIPT}</script>
</head>
<body>
<header id="top"><h1>{_e(title)}</h1>{sub}</header>
{toc}
<main>
{body}
</main>
<footer class="footer" id="footer">{footer}</footer>
</body>
</html>
"""


def write_report(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    Missing parent folders are created; returns the path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
