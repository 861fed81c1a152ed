"""``losslab report``: one self-contained HTML page of a study, from its stores alone.

The page holds the study's settings, its best trials against the baselines at the search's
fidelity (the study's best marked ★: a baseline when it beats every trial) and their test Dice
per class, the study's plots (objective over trials, parallel coordinates, GP fitness), the
comparison of ``losslab compare`` at the final fidelity (when it has run: tables with intervals
and significance marks, the rank correlation, and each entrant's plots of its first seed), the
latest ``losslab calibrate`` (its table, recommendation and rank plot), links
to the MLflow runs (at ``--mlflow-ui``, else the tracking server, else ``mlflow ui``'s default
address), and the study file. Nothing is trained: what the stores lack is said.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from losslab.analysis.calibration_record import CalibrationRecord
from losslab.analysis.compare_tables import TableData, comparison_tables, rank_line
from losslab.analysis.comparison import Comparison
from losslab.analysis.comparison_stats import ComparisonStats
from losslab.analysis.finished import FinishedStudy
from losslab.analysis.html_report import HtmlImage, HtmlSection, HtmlTable, render_report
from losslab.classwise import foreground_mean
from losslab.losses.naming import term_labels
from losslab.plots import evaluation_plots
from losslab.search.study_plots import study_plots
from losslab.search.study_timing import plural
from losslab.search.summary import best_run, summary_rows, verdict_line

__all__ = ["build_report", "html_table", "run_url"]

_PLOT_TITLES = {
    "plots/val_dice.png": "validation Dice per class over epochs",
    "plots/class_weights.png": "class weights over epochs",
    "plots/term_weights.png": "loss-term weights over epochs",
    "plots/logits.png": "logit margins of foreground and background voxels (test split)",
    "objective_history.png": "objective over trials, with the running best",
    "parallel_coordinates.png": "searched parameters against the objective",
    "gp_fitness.png": "fitness per generation",
    "plots/calibration_ranks.png": "each candidate's rank against fidelity (1 = best)",
}


def html_table(data: TableData, links: list[list[str]] | None = None) -> HtmlTable:
    return HtmlTable(
        data.title,
        list(data.headers),
        [list(r) for r in data.rows],
        classes=[list(r) for r in data.classes] if data.classes else None,
        note=data.note,
        links=links,
    )


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def ui_address(tracking_uri: str, ui_url: str | None = None) -> str:
    """Where the MLflow UI of ``tracking_uri`` is: ``ui_url`` when given (``losslab report
    --mlflow-ui``: another port or host), else the server itself, else ``mlflow ui``'s
    default address for a local store."""
    if ui_url:
        return ui_url.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return LOCAL_UI


def run_url(
    tracking_uri: str, experiment_id: str | None, run_id: str | None, ui_url: str | None = None
) -> str:
    """The MLflow UI's address of a run ("" when there is no run)."""
    if not run_id or not experiment_id:
        return ""
    return f"{ui_address(tracking_uri, ui_url)}/#/experiments/{experiment_id}/runs/{run_id}"


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _class_table(outcome) -> HtmlTable | None:
    """Test Dice per class of the best trials and the baselines at the search fidelity (one
    seed each), as ``losslab search`` prints it: classes in rows with their voxel share."""
    rows = [r for r in summary_rows(outcome) if r["class_dice"]]
    if not rows:
        return None
    dataset = outcome.dataset
    shares = dataset.foreground_shares()
    headers = ["class", "share"] + [r["label"] for r in rows]
    body = [["mean", ""] + [_fmt(foreground_mean(r["class_dice"])) for r in rows]]
    for c, name in enumerate(dataset.class_names):
        if c == 0:
            continue
        body.append(
            [name, f"{100 * shares[c - 1]:.1f}%"] + [_fmt(r["class_dice"][c]) for r in rows]
        )
    cases = len(dataset.splits.get("test", []))
    return HtmlTable(
        f"Test Dice per class at the search fidelity (test split, {cases} case"
        f"{'s' * (cases != 1)}; one seed)",
        headers,
        body,
        note="One seed says little about a class: losslab compare trains each over seeds.",
    )


def _search_section(
    study: FinishedStudy, experiment_id: str | None, uri: str, ui_url: str | None = None
) -> HtmlSection:
    outcome = study.outcome()
    counts = outcome.counts()
    config = study.config
    winner = best_run(outcome)
    rows, links = [], []
    for row in summary_rows(outcome):
        mark = " ★" if winner and row["run_id"] == winner else ""
        rows.append(
            [
                row["name"] + mark,
                row["where"],
                _fmt(row["objective"]),
                _fmt(row["test_objective"]),
                _fmt(row["test_dice"]),
                row["candidate"].describe() if row["candidate"] is not None else "",
            ]
        )
        links.append([run_url(uri, experiment_id, row["run_id"], ui_url), "", "", "", "", ""])
    test_cases = len(study.dataset.splits.get("test", []))
    shown = min(config.top, len(outcome.best()))
    table = HtmlTable(
        f"Best {plural(shown, 'trial')} against the baselines at the search "
        f"fidelity (one seed; test split, {plural(test_cases, 'case')}; ★ the study's best)",
        ["candidate", "from", "val objective", "test objective", "test mean Dice", "definition"],
        rows,
        links=links if any(any(r) for r in links) else None,
        note=f"Objective: {config.objective.describe()}; the search maximised the validation one.",
    )
    images = [
        HtmlImage(_PLOT_TITLES.get(name, name), png)
        for name, png in study_plots(study.records, config.objective.describe()).items()
    ]
    text = (
        f"{plural(len(study.records), 'trial')} ({counts['ok']} ok, {counts['pruned']} pruned, "
        f"{counts['failed']} failed, {counts['cached']} answered from the cache)."
    )
    verdict = verdict_line(outcome, markup=False)
    if verdict:
        text += "\n\n" + verdict
    tables = [table]
    per_class = _class_table(outcome)
    if per_class is not None:
        tables.append(per_class)
    return HtmlSection("Search", text=text, tables=tables, images=images)


def _comparison_section(
    comparison: Comparison | None,
    stats: ComparisonStats | None,
    study: FinishedStudy,
    experiment_id: str | None,
    uri: str,
    ui_url: str | None = None,
) -> HtmlSection:
    if comparison is None or stats is None:
        name, final = study.config.final_fidelity()
        return HtmlSection(
            "Comparison",
            text=(
                f"No comparison at the final fidelity ({name}: {final.describe()}) is recorded "
                "yet. Run it with: losslab compare " + (study.config.path or study.config.name)
            ),
        )
    tables = []
    for data in comparison_tables(comparison, stats):
        links = None
        if data.links and data.rows and data.headers[0] == "entrant":
            links = []
            for entrant, row in zip(comparison.entrants, data.rows):
                first = next((r for r in entrant.run_ids if r), None)
                links.append([run_url(uri, experiment_id, first, ui_url)] + [""] * (len(row) - 1))
            if not any(any(r) for r in links):
                links = None
        tables.append(html_table(data, links))
    images = []
    for entrant in comparison.entrants:
        result = next((r for r in entrant.results if r.ok), None)
        if result is None:
            continue
        names = term_labels(entrant.candidate.terms)
        for name, png in evaluation_plots(result, names).items():
            title = f"{entrant.label}: {_PLOT_TITLES.get(name, name)} (seed {comparison.seeds[0]})"
            images.append(HtmlImage(title, png))
    text = (
        rank_line(stats)
        + "\n\n"
        + (
            f"{len(comparison.entrants)} entrants x {len(comparison.seeds)} seeds at the final "
            f"fidelity {comparison.fidelity_name} ({comparison.fidelity.describe()}); the test "
            "split is scored with HD95."
        )
    )
    return HtmlSection("Comparison", text=text, tables=tables, images=images)


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _calibration_section(record: CalibrationRecord | None, study: FinishedStudy) -> HtmlSection:
    """``losslab calibrate``'s latest table, recommendation and rank plot, or how to run it."""
    if record is None:
        return HtmlSection(
            "Calibration",
            text=(
                "How well the search fidelity ranks candidates was not measured for this study. "
                "Measure it with: losslab calibrate " + (study.config.path or study.config.name)
            ),
        )
    labels = {
        "fidelity": "fidelity",
        "cost_s": "s / evaluation",
        "spread": "seed spread (sd)",
        "spearman": "Spearman rho with the top [95%] (p)",
        "kendall": "Kendall tau with the top [95%] (p)",
        "separated": "pairs separated",
    }
    rows = [[_cell(v) for v in row] for row in record.rows()]
    table = HtmlTable(
        "Rank agreement of each fidelity with the top one (losslab calibrate)",
        [labels[c] for c in record.headers()],
        rows,
        note="The top fidelity's own row gives its seeds' agreement with each other.",
    )
    status = "" if record.status == "FINISHED" else f" (its run ended {record.status})"
    text = (record.recommendation or "No recommendation was recorded.") + (
        f"\n\nMLflow run {record.run_id}{status}."
    )
    images = []
    if record.plot:
        images.append(HtmlImage(_PLOT_TITLES["plots/calibration_ranks.png"], record.plot))
    return HtmlSection("Calibration", text=text, tables=[table] if rows else [], images=images)


def build_report(
    study: FinishedStudy,
    comparison: Comparison | None,
    stats: ComparisonStats | None,
    *,
    calibration: CalibrationRecord | None = None,
    experiment_id: str | None = None,
    tracking_uri: str = "",
    ui_command: str = "",
    ui_url: str | None = None,
) -> str:
    """The page's HTML (see the module docstring); ``ui_url``: where the MLflow UI serves
    (default: ``ui_address``)."""
    config = study.config
    splits = study.dataset.splits
    final_name, final = config.final_fidelity()
    settings = [
        ("study", config.name),
        ("backend", config.backend),
        ("objective", config.objective.describe()),
        ("data", f"{study.dataset.name}: {len(study.dataset.images)} cases"),
        ("splits", ", ".join(f"{k} {len(v)}" for k, v in splits.items())),
        ("classes", ", ".join(study.dataset.class_names)),
        ("search fidelity", config.fidelity.describe()),
        ("final fidelity", f"{final_name}: {final.describe()}"),
        ("budget", _budget(config)),
        ("seed", str(config.seed)),
        ("storage", study.storage_url),
        ("MLflow", _mlflow_line(tracking_uri, ui_command, ui_url)),
    ]
    sections: Sequence[HtmlSection] = [
        HtmlSection("Settings", settings=settings),
        _comparison_section(comparison, stats, study, experiment_id, tracking_uri, ui_url),
        _search_section(study, experiment_id, tracking_uri, ui_url),
        _calibration_section(calibration, study),
        HtmlSection("Study file", code=config.source),
    ]
    return render_report(
        f"losslab study {config.name}",
        sections,
        subtitle=f"{config.backend} search of {study.dataset.name}",
    )


def _mlflow_line(tracking_uri: str, ui_command: str, ui_url: str | None = None) -> str:
    address = ui_address(tracking_uri, ui_url)
    if ui_url:
        return f"{tracking_uri}: the links to runs open at {address} (--mlflow-ui)"
    if address != LOCAL_UI:
        return f"{tracking_uri} (the links to runs open there)"
    return (
        f"{ui_command} (the links to runs open once it serves at {LOCAL_UI}; another address: "
        "losslab report --mlflow-ui URL)"
    )


def _budget(config) -> str:
    parts = [plural(config.budget.trials, "trial")] if config.budget.trials is not None else []
    if config.budget.minutes is not None:
        parts.append(f"{config.budget.minutes:g} minutes of trials per invocation")
    return ", ".join(parts)
