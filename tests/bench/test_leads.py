"""The loop's lead over each peer, paired by seed: the differences, their bounds alone and with every peer
counted, and the sign test."""

from __future__ import annotations

import pytest

from autoresearch.bench import leads
from autoresearch.bench.search_report import MethodSummary

# t quantiles with 3 degrees of freedom (scipy.stats.t.ppf): one-sided 95%, and 98.75% (95% over four peers).
T_95_3DF = 2.35336
T_98_75_3DF = 4.17653


def record(seed: int, **holdout):
    return {"seed": seed, "runs": [{"method": method, "holdout": value} for method, value in holdout.items()]}


def summaries(records):
    """The rows search_report.summarise gives, holding only what the leads read: each method's seeds and picks."""
    rows = {}
    for r in records:
        for run in r["runs"]:
            row = rows.setdefault(run["method"], MethodSummary(run["method"]))
            row.seeds.append(r["seed"])
            row.holdout.append(run["holdout"])
    return rows


def four_seeds():
    # GEPA trails the loop on seeds 0-3 by 0.5, 0.9, 0.3, 0.8; its seed-4 pick failed on holdout; MIPROv2, greedy
    # and random ran seed 0 only; seed 5 has no loop run.
    records = [record(s, autoresearch=loop, gepa=3.0) for s, loop in enumerate((3.5, 3.9, 3.3, 3.8))]
    records[0]["runs"] += [{"method": m, "holdout": 3.5} for m in ("mipro", "greedy", "random")]
    records.append(record(4, autoresearch=3.2, gepa=None))
    records.append(record(5, gepa=9.0))
    return records


def test_each_peer_is_paired_with_the_loop_on_the_seeds_both_have_a_holdout_composite_for():
    by_peer = {lead.peer: lead for lead in leads.leads(summaries(four_seeds()))}
    assert set(by_peer) == {"gepa", "mipro", "greedy", "random"}  # never the loop against itself
    gepa = by_peer["gepa"]
    assert gepa.seeds == (0, 1, 2, 3)  # seed 4: GEPA's pick failed; seed 5: no loop run
    assert gepa.differences == pytest.approx((0.5, 0.9, 0.3, 0.8))
    assert gepa.peers == 4 and by_peer["mipro"].seeds == (0,)


def test_the_bound_is_the_one_sided_t_bound_alone_and_with_every_peer_counted():
    gepa = next(lead for lead in leads.leads(summaries(four_seeds())) if lead.peer == "gepa")
    se = 0.2753785 / 2  # the sample sd of (0.5, 0.9, 0.3, 0.8) over √4
    assert gepa.mean == pytest.approx(0.625) and gepa.se == pytest.approx(se)
    assert gepa.bound() == pytest.approx(0.625 - T_95_3DF * se, abs=1e-4)  # +0.30
    assert gepa.corrected_confidence == pytest.approx(0.9875)
    assert gepa.corrected_bound == pytest.approx(0.625 - T_98_75_3DF * se, abs=1e-4)  # +0.05


def test_a_positive_bound_stands_only_from_as_many_seeds_as_a_sign_test_needs():
    # As the keep rule's: 5 seeds for a claim at 95%, 7 at 98.75%; a bound at or under zero claims nothing.
    five = [record(s, autoresearch=3.0 + d, gepa=3.0) for s, d in enumerate((0.5, 0.9, 0.3, 0.8, 0.6))]
    [lead] = leads.leads(summaries(five))
    assert lead.bound() > 0 and lead.stands() and lead.peers == 1  # one peer: the corrected bound is the same
    assert lead.stands(0.9875) is False and lead.bound(0.9875) > 0
    [four] = leads.leads(summaries(five[:4]))
    assert four.bound() > 0 and not four.stands()
    trailing_records = [record(s, autoresearch=3.0, gepa=3.0 + d) for s, d in enumerate((0.5, 0.9, 0.3))]
    [trailing] = leads.leads(summaries(trailing_records))
    assert trailing.bound() < 0 and trailing.stands()  # a bound below zero stands: it claims no lead
    assert f"| {trailing.bound():+.2f} |" in leads.table(summaries([record(0, autoresearch=3.0, gepa=3.5),
                                                          record(1, autoresearch=3.0, gepa=3.9),
                                                          record(2, autoresearch=3.0, gepa=3.3)]))


def test_seeds_where_both_picks_are_the_same_do_not_count_towards_a_claim():
    # 4 leads and 3 ties (both handed back the start): the t bound is above zero, but 4 of 4 is chance 1 in 16.
    records = [record(s, autoresearch=3.0 + d, random=3.0) for s, d in enumerate((0.5, 0.9, 0.3, 0.8, 0, 0, 0))]
    [lead] = leads.leads(summaries(records))
    assert lead.bound() > 0 and (lead.wins, lead.ties) == (4, 3)
    assert not lead.stands()
    assert f"| {lead.bound():+.2f} (a claim needs 5 untied seeds) |" in leads.table(summaries(records))
    records[4]["runs"][0]["holdout"] = 3.4  # a fifth lead: 5 of 5 untied
    [lead] = leads.leads(summaries(records))
    assert lead.bound() > 0 and lead.stands()


def test_one_seed_has_no_bound():
    mipro = next(lead for lead in leads.leads(summaries(four_seeds())) if lead.peer == "mipro")
    assert mipro.se is None and mipro.bound() is None and mipro.corrected_bound is None


@pytest.mark.parametrize(("loop", "peer", "wins", "losses", "p"), [
    ((3.5, 3.6, 3.7, 3.8), (3.0, 3.0, 3.0, 3.0), 4, 0, 1 / 16),
    ((3.5, 3.6, 3.7, 3.8, 3.9), (3.0,) * 5, 5, 0, 1 / 32),
    ((3.5, 3.6, 3.7, 2.8), (3.0,) * 4, 3, 1, 5 / 16),  # 3 or 4 of 4 by chance: (4 + 1) / 16
    ((3.5, 3.0, 3.0, 3.0), (3.0,) * 4, 1, 0, 1 / 2),  # ties (both picks the start) leave one untied seed
    ((3.0, 3.0), (3.0, 3.0), 0, 0, 1.0),
])
def test_the_sign_test_counts_the_untied_seeds_the_loop_led(loop, peer, wins, losses, p):
    records = [record(s, autoresearch=a, greedy=b) for s, (a, b) in enumerate(zip(loop, peer))]
    [lead] = leads.leads(summaries(records))
    assert (lead.wins, lead.losses) == (wins, losses)
    assert lead.sign_p == pytest.approx(p)


def test_the_table_gives_each_peer_a_row_and_says_where_a_bound_needs_more_seeds():
    lines = leads.table(summaries(four_seeds())).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| dspy.MIPROv2 (0 demos)", "| dspy.GEPA", "| greedy (incumbent only)", "| random recipes, no pruner"]
    assert "lower bound with 4 peers counted (98.75%)" in lines[0]
    assert ("| dspy.GEPA | 4 | +0.62 ± 0.14 | +0.30 (a claim needs 5 untied seeds) | "
            "+0.05 (a claim needs 7 untied seeds) | 4 / 0 / 0 | 0.0625 |") in lines
    assert "| dspy.MIPROv2 (0 demos) | 1 | +0.00 | – (one seed) | – (one seed) | 0 / 0 / 1 | 1 |" in lines


def test_without_a_seed_both_ran_the_table_says_so_in_one_line():
    assert leads.table(summaries([record(0, gepa=3.0), record(1, autoresearch=3.0)])) == (
        "Paired leads: no seed here has both the loop's pick and a peer's on the holdout tasks.")
