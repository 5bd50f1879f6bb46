"""`autoresearch report`: one self-contained HTML file under runs/ with every section the morning review needs."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main
from autoresearch.review.report import report_path
from autoresearch.search.pareto import TrialPoint, pareto_front
from autoresearch.store import Store


@pytest.fixture(scope="module")
def report(overnight):
    result = CliRunner().invoke(main, ["report", "-w", str(overnight.root), "--open-path-only"])
    assert result.exit_code == 0, result.output
    path = result.output.strip()
    assert path == str(report_path(overnight.root, overnight.study))
    return path, open(path, encoding="utf-8").read()


def test_report_is_written_under_runs_and_its_path_printed(overnight, report):
    path, _ = report
    assert path.startswith(str(overnight.root / "runs" / "report-"))
    result = CliRunner().invoke(main, ["report", "-w", str(overnight.root)])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1] == path


def test_report_needs_no_network(report):
    _, page = report
    # Nothing loaded from anywhere: no src/href to another host, no stylesheet or script files.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_has_every_chart_and_section(report):
    _, page = report
    for anchor in ("composite", "pareto", "energy", "operators", "importances", "commits", "trials"):
        assert f'id="{anchor}"' in page
    assert page.count('<svg class="chart"') == 6  # composite, Pareto, joules, latency, operators, importances
    assert "Composite by trial" in page and "Pareto front" in page


def test_report_lists_every_commit_with_a_link_to_its_diff_and_task_deltas(overnight, report):
    _, page = report
    store = Store.for_workspace(overnight.root / "runs")
    keeps = [r for r in store.trials(overnight.study) if r["status"] == "keep"]
    for row in keeps:
        assert f'<a href="#trial-{row["number"]}"><code>{row["commit_sha"][:10]}</code></a>' in page
        assert f'<article id="trial-{row["number"]}">' in page
    article = page[page.index('<article id="trial-2">'):]
    article = article[:article.index("</article>")]
    assert '<span class="del">-Answer!</span>' in article and '<span class="add">+Answer!!!</span>' in article
    assert "2.20 → 5.10</span> (+2.90)" in article  # t0's composite, before → after
    assert "evidence: kept: +1.65 over 6 tasks × 2 seeds (the seeds changed no score: each task counted once), 95% lower bound +1.15" in article


def test_report_shows_roles_operators_and_importances(report):
    _, page = report
    for role in ("planner", "producer", "evaluator", "proposer"):
        assert f"<td>{role}</td><td>smollm2-135m</td>" in page
    # rephrase: keep 2, discard 2, pruned 1, failed 1, interrupted 0
    assert "<td>rephrase</td>" + "".join(f'<td class="num">{n}</td>' for n in (2, 2, 1, 1, 0)) in page
    # Which operator earns keeps, per file: 2 keeps of the 6 rephrase trials that ran (the interrupted one did not).
    assert '<td>rephrase</td><td class="num">2/6 (33%)</td>' in page
    # The overnight study's finished trials vary the recipe's parameters: Optuna computes importances, charted.
    assert 'aria-label="parameter importances"' in page
    assert "Optuna parameter importances unavailable" not in page


def test_pareto_front_keeps_only_undominated_trials():
    def point(n, composite, joules, status="discard"):
        return TrialPoint(n, status, composite, False, False, joules, None, "", "", "", "")

    points = [point(0, 3.0, 1.0, "baseline"), point(1, 4.0, 2.0), point(2, 3.5, 3.0), point(3, 5.0, 2.0, "keep"),
              TrialPoint(4, "pruned", 9.0, True, False, 0.1, None, "", "", "", ""),
              TrialPoint(5, "discard", 6.0, False, True, 0.1, None, "", "", "", "")]
    # 1 and 2 are beaten by 3; the pruned one ran some tasks only; 5 borrowed another trial's scores.
    assert pareto_front(points) == [0, 3]


def test_importances_of_a_study_whose_optuna_storage_is_gone_say_so_and_create_nothing(tmp_path):
    from autoresearch.review.report.data import importances

    gone = tmp_path / "runs" / "optuna.db"
    gone.parent.mkdir()  # the workspace is there, its Optuna database is not (deleted, or moved with the store)
    found = importances(f"sqlite:///{gone}", "nightly")
    assert found.unavailable == f"unavailable: the study's Optuna storage {gone} is gone"
    assert not gone.exists()
