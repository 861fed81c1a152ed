"""``losslab compare``, ``report`` and ``show`` on a finished tiny study, as a user runs them."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from losslab.analysis.comparison import run_comparison
from losslab.analysis.finished import open_finished, resolve_study
from losslab.cli.main import main
from losslab.search import load_study, run_study
from losslab.training import Trainer

from .fakes import FakeTrainer
from .studies import write_study

BASELINES = ["dice", {"name": "dice+cbs", "loss": "dice", "class_schedule": "cbs"}]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny study with 3 finished trials and two baselines, and a short final fidelity."""
    folder = tmp_path_factory.mktemp("study")
    path = write_study(folder, baselines=BASELINES, final={"epochs": 2, "steps_per_epoch": 3})
    assert main(["search", str(path), "--no-progress"]) == 0
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _mlflow_runs(path: Path) -> int:
    from losslab.tracking.tracker import Tracker

    config = load_study(path)
    return len(Tracker(config.tracking_uri, experiment=config.experiment).find_runs())


def test_compare_prints_intervals_marks_and_the_rank_correlation(finished, capsys):
    assert main(["compare", str(finished), "--top", "2", "--seeds", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Final comparison (test split, 1 case x 2 seeds" in out
    for header in ("Test DSC per class", "Test SEN per class", "Test PRC per class", "HD95"):
        assert header in out
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", out)  # a mean with its interval
    assert "trial-" in out and "dice+cbs" in out
    assert "Spearman's rho" in out
    assert "8 evaluations; 8 trained now, 0 from the cache" in out
    # Run again: everything comes from the cache, nothing trains.
    assert main(["compare", str(finished), "--top", "2", "--seeds", "2", "--no-progress"]) == 0
    assert "0 trained now, 8 from the cache" in capsys.readouterr().out


def test_compare_is_logged_on_a_parent_run(finished, capsys):
    from losslab.tracking.tracker import Tracker

    assert main(["compare", str(finished), "--top", "1", "--seeds", "1", "--no-progress"]) == 0
    capsys.readouterr()
    config = load_study(finished)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    (parent,) = tracker.runs_tagged({"losslab.role": "compare", "losslab.study": "tiny"})
    run = tracker.client.get_run(parent.run_id)
    assert run.info.status == "FINISHED"
    assert "Final comparison" in run.data.tags["mlflow.note.content"]
    assert {"final_objective/dice", "final_objective_low/dice_cbs"} <= set(run.data.metrics)
    local = tracker.client.download_artifacts(parent.run_id, "comparison.json")
    data = json.loads(Path(local).read_text())
    labels = [e["label"] for e in data["entrants"]]
    assert labels[-2:] == ["dice", "dice+cbs"] and labels[0].startswith("trial-")
    children = tracker.runs_tagged({"losslab.role": "final"}, parent_run_id=parent.run_id)
    assert len(children) >= 3  # one per entrant and seed that trained under this parent


def test_a_killed_comparison_reruns_and_trains_nothing_twice(tmp_path):
    path = write_study(tmp_path, baselines=BASELINES, final={"epochs": 1, "steps_per_epoch": 2})
    config = load_study(path)
    run_study(config, progress=False, trainer=FakeTrainer)
    fits: list[tuple[str, int]] = []

    def counting(stop_after: int | None):
        def make(train_config, hooks):
            trainer = Trainer(train_config, hooks)
            fit = trainer.fit

            def counted(candidate, dataset):
                if stop_after is not None and len(fits) == stop_after:
                    raise KeyboardInterrupt("killed")
                fits.append((candidate.key, train_config.seed))
                return fit(candidate, dataset)

            trainer.fit = counted
            return trainer

        return make

    study = open_finished(config)
    with pytest.raises(KeyboardInterrupt):
        run_comparison([study], top=1, seeds=2, progress=False, trainer=counting(stop_after=3))
    assert len(fits) == 3
    comparison = run_comparison(
        [open_finished(config)], top=1, seeds=2, progress=False, trainer=counting(None)
    )
    assert len(fits) == 3 * 2  # 3 entrants x 2 seeds, each trained once over both runs
    assert len(set(fits)) == len(fits)
    assert comparison.trained == 3
    assert all(len(e.results) == 2 and all(r.ok for r in e.results) for e in comparison.entrants)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "--seeds must be a positive integer"),
        (["--fidelity", "longest"], "fidelity 'longest' is not defined"),
        (["--reference", "gdl"], "--reference 'gdl' is not a baseline"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(finished, capsys, args, message):
    folder = finished.parent
    before, runs = _snapshot(folder), _mlflow_runs(finished)
    assert main(["compare", str(finished), *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err.replace("\n", "")
    assert _snapshot(folder) == before
    assert _mlflow_runs(finished) == runs


def test_an_unknown_study_name_is_named_and_nothing_is_created(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "no_such_study", "--no-progress"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "no_such_study" in err and "neither a study file nor a study" in err
    assert list(tmp_path.iterdir()) == []
    assert main(["show", "missing.yaml"]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_a_study_name_in_a_storage_is_found(finished, capsys):
    storage = f"journal:{finished.parent / 'optuna.log'}"
    assert main(["show", "tiny", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "Study tiny: best" in out and "3 trials" in out
    assert main(["show", "other", "--storage", storage]) == 2
    assert "studies there: tiny" in capsys.readouterr().err.replace("\n", "")


def test_a_study_whose_trials_all_failed_cannot_be_compared(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path, baselines=["dice"])
    monkeypatch.setattr(FakeTrainer, "fail_every", 1)
    run_study(load_study(path), progress=False, trainer=FakeTrainer)
    before = _snapshot(tmp_path)
    assert main(["compare", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "study 'tiny': no trial finished ok (3 trials: 3 failed)" in err
    assert _snapshot(tmp_path) == before


def test_final_fidelities_in_the_study_file(tmp_path):
    from losslab.config import ConfigError

    single = load_study(write_study(tmp_path, final={"epochs": 5}))
    assert single.final_fidelity() == ("final", single.final["final"])
    assert single.final["final"].epochs == 5
    named = load_study(write_study(tmp_path, final={"long": {"epochs": 9}, "short": {"epochs": 3}}))
    assert named.final_fidelity()[0] == "long"
    assert named.final_fidelity("short")[1].epochs == 3
    assert named.final_fidelity("search")[1] == named.fidelity
    assert named.final_fidelity("full")[1].epochs is None
    none = load_study(write_study(tmp_path))
    assert none.final_fidelity()[0] == "full"
    assert none.fingerprint == single.fingerprint == named.fingerprint  # not the study's identity
    with pytest.raises(ConfigError, match=r"final\.epochs"):
        load_study(write_study(tmp_path, final={"epochs": 0}))
    with pytest.raises(ConfigError, match="reserved"):
        load_study(write_study(tmp_path, final={"search": {"epochs": 2}}))


def test_show_reprints_the_study_tables(finished, capsys):
    assert main(["show", str(finished)]) == 0
    out = capsys.readouterr().out
    assert "Study tiny: best" in out and "dice+cbs" in out and "Test Dice per class" in out


def test_report_holds_the_comparison(finished, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOSSLAB_PLOTS", "1")
    assert main(["compare", str(finished), "--top", "2", "--seeds", "2", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(finished), "--top", "2", "--out", str(out)]) == 0
    page = out.read_text()
    assert "Final comparison (test split, 1 case x 2 seeds" in page
    assert "data:image/png;base64," in page
    assert "Spearman" in page and "losslab study tiny" in page
    assert re.search(r'href="http://127\.0\.0\.1:5000/#/experiments/\d+/runs/[0-9a-f]{32}"', page)
    config = resolve_study(str(finished))
    assert "study: tiny" in config.source and "study: tiny" in page  # the study file is shown


class _Cells(HTMLParser):
    """Every table's cells (text), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.slow
def test_the_report_loads_in_a_browser_with_the_comparison_numbers(
    finished, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("LOSSLAB_PLOTS", "1")
    from browser import find_browser, load_page

    from losslab.analysis.compare_tables import comparison_tables
    from losslab.analysis.comparison import cached_comparison
    from losslab.analysis.comparison_stats import compute_stats

    if find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    assert main(["compare", str(finished), "--top", "2", "--seeds", "2", "--no-progress"]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(finished), "--top", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    load = load_page(out)
    assert load.console_errors == []
    assert 'data-ready="1"' in load.dom
    images = re.search(r'data-images="(\d+)/(\d+)"', load.dom)
    assert images and images.group(1) == images.group(2) and int(images.group(2)) >= 4
    parser = _Cells()
    parser.feed(load.dom)
    expected = comparison_tables(
        *(lambda c: (c, compute_stats(c)))(
            cached_comparison(open_finished(resolve_study(str(finished))), top=2)
        )
    )
    shown = [t for t in parser.tables if t and t[0] and t[0][0] in ("entrant", "class")]
    assert len(shown) >= len(expected) - 1
    for table, data in zip(shown, expected):
        assert table[0] == data.headers
        assert table[1:] == data.rows  # the numbers of the comparison, cell by cell


def test_a_report_before_any_comparison_says_how_to_run_one(tmp_path, capsys):
    path = write_study(tmp_path, baselines=["dice"])
    run_study(load_study(path), progress=False, trainer=FakeTrainer)
    out = tmp_path / "report.html"
    assert main(["report", str(path), "--out", str(out)]) == 0
    assert "no comparison yet" in capsys.readouterr().out
    page = out.read_text()
    assert "No comparison at the final fidelity" in page and "losslab compare" in page
    assert "Best 3 trials against the baselines" in page
    assert main(["report", str(path), "--top", "7", "--out", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()


def test_a_steered_run_is_not_compared_its_replay_is(monkeypatch):
    """A greedy controller's steered trial (its record has a variant) would train as the plain
    loss without its controller: compare skips it; the replay trial stands for it."""
    from types import SimpleNamespace

    from losslab.analysis.finished import FinishedStudy
    from losslab.search.backend import TrialRecord

    records = [
        TrialRecord(1, None, "ok", 0.9, eval_key="a", variant={"greedy": {"every": 2}}),
        TrialRecord(2, None, "ok", 0.8, eval_key="b"),
    ]
    study = FinishedStudy(None, None, None, records, "")
    monkeypatch.setattr(
        FinishedStudy, "outcome", lambda self: SimpleNamespace(best=lambda: records)
    )
    assert [r.number for r in study.ranked()] == [2]


def test_a_top_beyond_a_short_study_compares_the_trials_there_are(finished, capsys):
    # --minutes so short that the first evaluation is stopped: the run says so and ends.
    args = ["compare", str(finished), "--top", "9", "--seeds", "1", "--no-progress"]
    assert main([*args, "--minutes", "0.0001"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert (
        "--top 9: study 'tiny' has 3 distinct finished trials so far; comparing its best 3" in out
    )
    # 3 trials + 2 baselines, one seed; the time of one from the comparison's evaluations
    # when other tests left some in the cache, else from the study's own, scaled by the final
    # fidelity's steps (2 x 3 against the search's 2 x 2).
    assert re.search(
        r"5 evaluations: \d in the cache, \d to train, about \d+ s each here \((the "
        r"comparison's own evaluations|the study's evaluations, x 1\.5 for the final "
        r"fidelity's steps)\)",
        out,
    ), out
    assert "--minutes 0.0001 stops it then" in out
    assert "the time budget of 0.0001 minute(s) ended; finished evaluations are kept" in out
    assert "Final comparison" not in out
    # The same command without the limit finishes the comparison.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Final comparison (test split, 1 case x 1 seed" in out
    assert "5 evaluations;" in out


def test_no_progress_hides_mlflows_download_bars(finished, capfd):
    args = ["compare", str(finished), "--top", "1", "--seeds", "1", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0  # its tables are appended to the parent run's: MLflow reads them back
    err = capfd.readouterr().err
    assert "Downloading artifacts" not in err and "it/s" not in err
