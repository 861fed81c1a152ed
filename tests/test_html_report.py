"""The self-contained HTML report: escaping, links, ids, atomic writes, and a real browser."""

from __future__ import annotations

import io
import os
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import find_browser, load_page

from losslab import __version__
from losslab.analysis.html_report import (
    HtmlImage,
    HtmlSection,
    HtmlTable,
    is_safe_url,
    render_report,
    write_report,
)

__all__: list[str] = []

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source", "area", "base"}
EVIL = "<script>alert('x')</script> & co"


class Page(HTMLParser):
    """Parses a page: its tags (checked for balance), ids, hrefs, img srcs, tables and attrs."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed tags: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def attrs(self, tag: str, name: str) -> list[str]:
        """The values of attribute ``name`` on every ``tag``."""
        return [a[name] or "" for t, a in self.tags if t == tag and name in a]


def png(color: str = "tab:blue") -> bytes:
    """A small PNG plot, drawn without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1.5), dpi=40)
    FigureCanvasAgg(figure)
    figure.add_subplot().plot([0, 1, 2], [0.7, 0.8, 0.75], color=color)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc000000301010018dd8db00000000049454e44ae426082"
)

TABLE_A = HtmlTable(
    title="Dice per class (test)",
    headers=["loss", "liver", "tumour", "mean"],
    rows=[
        ["dice+ce", "0.951 [0.944, 0.957]", "0.612 [0.580, 0.641] ▲", "0.782 [0.770, 0.795] ▲"],
        ["focal", "0.948 [0.940, 0.955]", "0.571 [0.540, 0.602] ▼", "0.760 [0.748, 0.771]"],
        ["baseline", "0.950 [0.943, 0.956]", "0.590 [0.560, 0.619]", "0.770 [0.757, 0.782]"],
    ],
    classes=[["best", "", "better best", "better"], ["", "muted", "worse", ""], ["", "", "", ""]],
    note="▲/▼: better/worse than the baseline (paired bootstrap, p < 0.05); test split, n = 41",
    links=[["http://localhost:5000/#/experiments/1/runs/abc", "", "", ""]] + [["", "", "", ""]] * 2,
)
TABLE_B = HtmlTable(
    title="HD95 (mm)",
    headers=["loss", "HD95"],
    rows=[["dice+ce", "4.21 [3.80, 4.66] ▲"], ["focal", "-1.5e-2"], ["baseline", "n/a"]],
)


def full_report() -> list[HtmlSection]:
    """Two tables, two PNGs, settings, links and a code block."""
    return [
        HtmlSection(
            "Study",
            text="Loss search on the liver data set.\n\nSecond paragraph.",
            settings=[("dataset", "liver"), ("seeds", "0, 1, 2")],
            code="study: liver\nlosses:\n  - dice+ce\n  - focal\n",
        ),
        HtmlSection(
            "Comparison",
            tables=[TABLE_A, TABLE_B],
            images=[
                HtmlImage("Learning curves", png(), "validation Dice"),
                HtmlImage("Box", png("red")),
            ],
            links=[("MLflow run abc", "http://localhost:5000/#/experiments/1/runs/abc")],
        ),
    ]


# -- unit ---------------------------------------------------------------------------------------


def test_everything_is_escaped() -> None:
    table = HtmlTable(EVIL, [EVIL, "b"], [[EVIL, "1"]], classes=[['x" onclick="y', ""]], note=EVIL)
    section = HtmlSection(
        EVIL,
        text=EVIL,
        settings=[(EVIL, EVIL)],
        tables=[table],
        images=[HtmlImage(EVIL, TINY_PNG, EVIL)],
        links=[(EVIL, "https://example.org/?a=1&b=<2>")],
        code=EVIL,
    )
    html = render_report(EVIL, [section], subtitle=EVIL)
    assert html.count("<script") == 1 and html.count("</script>") == 1  # only the page's own
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert 'onclick="' not in html
    page = Page(html)
    assert page.attrs("a", "href")[-1] == "https://example.org/?a=1&b=<2>"
    assert page.attrs("img", "alt") == [EVIL]
    assert page.tables[0] == [[EVIL, "b"], [EVIL, "1"]]


def test_images_are_data_uris_and_nothing_external() -> None:
    html = render_report("t", full_report())
    page = Page(html)
    sources = page.attrs("img", "src")
    assert len(sources) == 2
    assert all(s.startswith("data:image/png;base64,iVBORw0KGgo") for s in sources)
    assert not page.attrs("link", "href") and not page.attrs("script", "src")
    external = [h for h in page.attrs("a", "href") if not h.startswith("#")]
    assert external and all(h.startswith("http://localhost:5000/") for h in external)
    for tag, attrs in page.tags:
        if tag == "a" and not (attrs["href"] or "").startswith("#"):
            assert attrs["target"] == "_blank" and attrs["rel"] == "noopener"
    assert '<meta charset="utf-8">' in html and 'name="viewport"' in html
    assert html.startswith("<!DOCTYPE html>") and "@media print" in html


def test_non_png_is_refused() -> None:
    with pytest.raises(ValueError, match="PNG"):
        render_report("t", [HtmlSection("s", images=[HtmlImage("x", b"GIF89a")])])


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<b>x</b>",
        "vbscript:msgbox",
        "relative/path.html",
        "//evil.example/x",
        "",
    ],
)
def test_unsafe_urls_are_not_linked(url: str) -> None:
    assert not is_safe_url(url)
    table = HtmlTable("t", ["a"], [["cell"]], links=[[url]])
    html = render_report("t", [HtmlSection("s", tables=[table], links=[("text", url)])])
    hrefs = Page(html).attrs("a", "href")
    assert all(h.startswith("#") for h in hrefs)
    assert "cell" in html and "text" in html


@pytest.mark.parametrize(
    "url", ["http://h/x", "https://h/x", "HTTPS://h", "file:///reports/r.html"]
)
def test_safe_urls_are_linked(url: str) -> None:
    assert is_safe_url(url)
    html = render_report("t", [HtmlSection("s", links=[("text", url)])])
    assert url in Page(html).attrs("a", "href")


def test_section_ids_are_unique_and_in_the_toc() -> None:
    titles = ["Results", "Results", "results!", "", "Contents", "toc", "Ünïcode ✓"]
    page = Page(render_report("t", [HtmlSection(t) for t in titles]))
    ids = page.attrs("section", "id")
    assert len(ids) == len(titles) and len(set(ids + ["toc", "top", "footer"])) == len(ids) + 3
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)
    toc = [h[1:] for h in page.attrs("a", "href") if h.startswith("#")]
    assert toc == ids


def test_empty_report_and_sections_render() -> None:
    page = Page(render_report("empty", []))
    assert page.attrs("section", "id") == [] and page.attrs("nav", "id") == []
    html = render_report(
        "t", [HtmlSection("Empty"), HtmlSection("Also", tables=[HtmlTable("x", ["a"], [])])]
    )
    page = Page(html)
    assert page.attrs("section", "id") == ["empty", "also"]
    assert page.tables == [[["a"]]]


def test_table_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="row 0"):
        render_report("t", [HtmlSection("s", tables=[HtmlTable("x", ["a", "b"], [["1"]])])])
    bad = HtmlTable("x", ["a"], [["1"]], classes=[["", "best"]])
    with pytest.raises(ValueError, match="classes"):
        render_report("t", [HtmlSection("s", tables=[bad])])


def test_cell_classes_and_alignment() -> None:
    html = render_report("t", [HtmlSection("s", tables=[TABLE_A])])
    assert '<td class="better best num">0.612 [0.580, 0.641] ▲</td>' in html
    assert '<td class="best"><a href="http://localhost:5000/' in html  # first column: text, left
    assert 'class="num">liver</th>' in html and '<p class="note">▲/▼' in html


def test_footer_names_version_and_utc_time() -> None:
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    html = render_report("t", [], generated=when)
    assert f"generated by losslab {__version__} on 2025-03-04 05:06:07 UTC" in html


def test_write_report_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    html = render_report("t", full_report())
    assert write_report(target, html) == target
    assert target.read_text(encoding="utf-8") == html
    assert os.listdir(target.parent) == ["report.html"]

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report(str(target), "<p>half</p>")
    assert target.read_text(encoding="utf-8") == html  # the old page is untouched
    assert os.listdir(target.parent) == ["report.html"]  # and the temp file removed


# -- browser ------------------------------------------------------------------------------------


@pytest.fixture()
def browser() -> str:
    """The browser, or skip."""
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium/Chrome on PATH (install Debian's `chromium`)")
    return found


def body_data(dom: str) -> dict[str, str | None]:
    """The attributes of ``<body>`` in the dumped DOM."""
    return next(a for t, a in Page(dom).tags if t == "body")


@pytest.mark.slow
def test_report_loads_cleanly_in_browser(browser: str, tmp_path: Path) -> None:
    path = write_report(tmp_path / "report.html", render_report("Liver study", full_report()))
    load = load_page(path)
    assert load.console_errors == []
    data = body_data(load.dom)
    assert data["data-ready"] == "1"
    assert data["data-images"] == "2/2"
    tables = Page(load.dom).tables
    assert tables == [[t.headers, *t.rows] for t in (TABLE_A, TABLE_B)]
    numbers = [re.findall(r"-?\d+\.\d+(?:e-?\d+)?", c) for r in tables[0][1:] for c in r[1:]]
    assert numbers[1] == ["0.612", "0.580", "0.641"]


@pytest.mark.slow
def test_tables_sort_in_browser(browser: str, tmp_path: Path) -> None:
    html = render_report("t", [HtmlSection("s", tables=[TABLE_B])])
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)  # allow a probe
    probe = """<script>addEventListener("load", function () {
      var th = document.querySelectorAll("th")[1], out = [];
      th.click(); out.push(order()); th.click(); out.push(order());
      document.querySelectorAll("th")[0].click(); out.push(order());
      document.body.dataset.order = out.join(";");
      function order() { return Array.from(document.querySelectorAll("tbody tr"),
        function (r) { return r.cells[0].textContent; }).join(","); }
    });</script></body>"""
    path = write_report(tmp_path / "sort.html", html.replace("</body>", probe))
    load = load_page(path)
    assert load.console_errors == []
    assert body_data(load.dom)["data-order"] == (
        "focal,dice+ce,baseline;baseline,dice+ce,focal;baseline,dice+ce,focal"
    )


@pytest.mark.slow
def test_uncaught_errors_are_detected(browser: str, tmp_path: Path) -> None:
    clean = tmp_path / "clean.html"
    clean.write_text("<!DOCTYPE html><title>c</title><p>fine</p><script>console.log(1)</script>")
    assert load_page(clean).console_errors == []

    thrown = tmp_path / "thrown.html"
    thrown.write_text('<!DOCTYPE html><title>t</title><script>throw new Error("boom")</script>')
    errors = load_page(thrown).console_errors
    assert any("Uncaught Error: boom" in e for e in errors), errors


@pytest.mark.slow
def test_errors_recorded_by_the_page_are_detected(browser: str, tmp_path: Path) -> None:
    # the report's own hook: console.error and a failed image, recorded in data-errors
    html = render_report("t", [HtmlSection("s")])
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    bad = '<img src="missing.png"><script>console.error("logged", 42)</script></body>'
    broken = write_report(tmp_path / "broken.html", html.replace("</body>", bad))
    load = load_page(broken)
    assert "page: logged 42" in load.console_errors
    assert "page: failed to load <img>" in load.console_errors
    assert body_data(load.dom)["data-images"] == "0/1"

    # with the policy in place, an injected script does not run and is reported
    injected = render_report("t", []).replace("</body>", "<script>alert(1)</script></body>")
    errors = load_page(write_report(tmp_path / "injected.html", injected)).console_errors
    assert any("CSP violation" in e for e in errors), errors


def test_long_cells_wrap_in_their_column() -> None:
    definition = "tversky(alpha=0.283, beta=0.901) + " * 6
    table = HtmlTable("t", ["candidate", "definition"], [["trial 1", definition]])
    page = render_report("r", [HtmlSection("s", tables=[table])])
    assert f'<td class="wrap">{definition}</td>' in page and "<td>trial 1</td>" in page
    assert "td.wrap{white-space:normal" in page  # the cell wraps; the table's box scrolls
