"""One self-contained HTML page for a study: inline CSS, inline SVG, a few lines of inline JS, no network."""

from __future__ import annotations

from html import escape

from ...energy import energy_label
from ...store.statuses import INCUMBENT_STATUSES
from ..study_log import Restart
from ..trial_detail import TaskComparison, TrialDetail, evidence_line
from . import svg
from .data import ReportData

# The page may load nothing from anywhere: a stray external reference shows up as a console error.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

# First thing in <head>: errors and console.error calls are recorded in the DOM, where a headless
# browser's --dump-dom (and a curious reader's inspector) can see them.
ERROR_PROBE = """<script>
(function () {
  var errors = [];
  function note(text) { errors.push(String(text)); document.documentElement.setAttribute('data-errors', errors.join(' | ')); }
  window.addEventListener('error', function (e) { note(e.message || 'resource failed to load'); }, true);
  window.addEventListener('securitypolicyviolation', function (e) { note('blocked ' + e.blockedURI); });
  var original = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, ' ')); return original.apply(console, arguments); };
})();
</script>"""

# Last thing in <body>: count the charts that have a real size, and wire the trial-table filter.
READY_SCRIPT = """<script>
(function () {
  var drawn = 0;
  document.querySelectorAll('svg.chart').forEach(function (chart) {
    var box = chart.getBBox();
    if (box.width > 0 && box.height > 0) { drawn += 1; }
  });
  document.body.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
  document.body.setAttribute('data-charts-drawn', String(drawn));
  var filter = document.getElementById('status-filter');
  if (filter) {
    filter.addEventListener('change', function () {
      document.querySelectorAll('#all-trials tbody tr').forEach(function (row) {
        row.hidden = filter.value !== 'all' && row.getAttribute('data-status') !== filter.value;
      });
    });
  }
})();
</script>"""

STYLE = """<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 16px 24px 48px; color: #202124; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #dadce0; }
h3 { font-size: 15px; margin: 24px 0 6px; } .muted, .empty { color: #5f6368; }
nav a { margin-right: 14px; } a { color: #1a73e8; text-decoration: none; } a:hover { text-decoration: underline; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid #dadce0; border-radius: 8px; padding: 8px 14px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e8eaed; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
svg.chart { max-width: 100%; height: auto; font-size: 12px; fill: #3c4043; }
svg .axis { stroke: #5f6368; } svg .grid { stroke: #eceff1; } svg .label { font-weight: 600; } svg .pt { font-size: 11px; }
.legend span { margin-right: 14px; white-space: nowrap; } .dot { display: inline-block; width: 10px; height: 10px;
       border-radius: 50%; margin-right: 4px; vertical-align: middle; }
pre.diff { background: #f8f9fa; border: 1px solid #e8eaed; padding: 8px 12px; overflow-x: auto; font-size: 12.5px; }
.add { color: #137333; background: #e6f4ea; } .del { color: #a50e0e; background: #fce8e6; } .hunk { color: #1967d2; }
.up { color: #137333; } .down { color: #c5221f; }
.status-keep { color: #137333; font-weight: 600; } .status-pruned, .status-discard { color: #5f6368; }
.status-failed, .status-interrupted { color: #c5221f; }
</style>"""


def _num(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _joules(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def _change(before: float | None, after: float | None, spec: str = ".2f", higher_is_better: bool = True,
            show=None) -> str:
    """'a → b' with a class saying whether it got better."""
    show = show or (lambda v: _num(v, spec))
    if before is None or after is None:
        return f"{show(before) if before is not None else '–'} → {show(after) if after is not None else '–'}"
    diff = after - before
    # Equal as printed is unchanged: a colour for a difference the reader cannot see would only mislead.
    css = "" if show(before) == show(after) else ("up" if (diff > 0) == higher_is_better else "down")
    return f'<span class="{css}">{show(before)} → {show(after)}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), attrs: str = "",
           row_attrs: list[str] | None = None) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr {row_attrs[r] if row_attrs else ''}>{cells}</tr>")
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _legend(statuses: list[str]) -> str:
    spans = "".join(f'<span><i class="dot" style="background:{svg.STATUS_COLOURS.get(s, "#000")}"></i>{s}</span>'
                    for s in statuses)
    return f'<p class="legend">{spans}</p>'


def summary(data: ReportData) -> str:
    log = data.log
    # The incumbent: the newest keep, or a new baseline after it (the user's own commit, which may score
    # below an earlier keep: the instructions HEAD holds are still the user's).
    incumbent = max([*log.entries, *log.restarts], key=lambda row: row.trial, default=None)
    baseline = "baseline composite" + (f" ({log.baseline_elsewhere})" if log.baseline_elsewhere else "")
    restarted = isinstance(incumbent, Restart)
    now = "incumbent composite" + (f" (new baseline, trial {incumbent.trial})" if restarted else "")
    cards = [(baseline, _num(log.baseline_composite)),
             (now, _num(incumbent.composite if incumbent else log.baseline_composite)),
             ("holdout", f"{_num(log.baseline_holdout)} → "
                         f"{_num(incumbent.holdout_composite if incumbent else log.baseline_holdout)}"),
             ("trials", str(len(data.trials))), ("commits", str(len(log.entries))),
             ("energy", f"{_joules(data.total_joules)} J")]
    counts = ", ".join(f"{k} {v}" for k, v in log.counts.items())
    models = ", ".join(f"{role}: {escape(model)}" for role, model in data.models.items())
    return (f"<h1>Study {escape(data.study)}</h1>"
            f'<p class="muted">branch {escape(data.branch)} · portfolio {escape(data.portfolio)} ({models}) · '
            f"workspace {escape(data.workspace)} · generated {escape(data.generated_at)}</p>"
            + '<div class="cards">' + "".join(f'<div class="card">{escape(k)}<b>{v}</b></div>' for k, v in cards)
            + f'</div><p class="muted">trials by outcome: {escape(counts)} · {data.total_calls} model calls'
            + (f" · {data.reused_replies} replies reused for requests identical to earlier ones"
               if data.reused_replies else "") + "</p>")


def composite_chart(data: ReportData) -> str:
    points, steps, best = [], [], None
    labelled = {e.trial for e in data.log.entries} | {r.trial for r in data.log.restarts}
    for p in data.trials:
        if p.composite is None:
            continue
        tip = (f"trial {p.number} · {p.status}{' (composite of the tasks it ran)' if p.partial else ''} · "
               f"composite {p.composite:.3f} · {p.operator} {p.description}")
        points.append(svg.Point(p.number, p.composite, svg.STATUS_COLOURS.get(p.status, "#000"), tip,
                                hollow=p.partial, label=f"#{p.number}" if p.number in labelled else ""))
        if p.status in INCUMBENT_STATUSES:
            best = p.composite
        if best is not None:
            steps.append((p.number, best))
    chart = svg.scatter(points, label="composite by trial", x_label="trial", y_label="composite (search tasks)",
                        lines=[(steps, "#1a9c47", True)], integer_x=True)
    statuses = sorted({p.status for p in data.trials}, key=list(svg.STATUS_COLOURS).index)
    return (f'<h2 id="composite">Composite by trial</h2>{chart}{_legend(statuses)}'
            '<p class="muted">The line is the incumbent: the last keep, or a new baseline after it where HEAD held '
            "a commit of yours instead (it may score below a keep before it); both are labelled. Hollow points are "
            "pruned trials, plotted at the composite of the tasks they ran before being stopped.</p>")


def pareto_section(data: ReportData) -> str:
    on_front = set(data.pareto)
    by_number = {p.number: p for p in data.trials}
    points = [svg.Point(p.joules_per_task, p.composite, svg.STATUS_COLOURS.get(p.status, "#000"),
                        f"trial {p.number} · {p.status} · composite {p.composite:.3f} · {p.joules_per_task:.4g} J/task",
                        label=f"#{p.number}" if p.number in on_front else "")
              for p in data.trials
              if p.composite is not None and not p.partial and not p.borrowed and p.joules_per_task is not None]
    front = [(by_number[n].joules_per_task, by_number[n].composite) for n in data.pareto]
    chart = svg.scatter(points, label="composite against joules per task", x_label="joules per task",
                        y_label="composite", lines=[(front, "#e8710a", False)])
    rows = [[f"#{n}", escape(by_number[n].status), _num(by_number[n].composite), _joules(by_number[n].joules_per_task),
             escape(by_number[n].description)] for n in data.pareto]
    return (f'<h2 id="pareto">Composite against energy (Pareto front)</h2>{chart}'
            '<p class="muted">Fully evaluated trials (a variant identical to an earlier one is not plotted twice); the orange line joins those no other trial beats on both '
            "a higher composite and fewer joules per task.</p>"
            + _table(["trial", "status", "composite", "J/task", "description"], rows, {2, 3}))


def energy_section(data: ReportData) -> str:
    label = lambda r: f"{r.role} · {r.model}"  # noqa: E731
    joule_bars = svg.bars([(label(r), r.joules, f"{r.joules:.4g} J over {r.calls} calls") for r in data.roles],
                          label="joules per role and model", unit=" J")
    latency_bars = svg.bars([(label(r), r.mean_latency_s, f"{r.mean_latency_s:.3g} s per call") for r in data.roles],
                            label="mean latency per call", unit=" s", colour="#e8710a")
    rows = [[escape(r.role), escape(r.model), str(r.calls), f"{r.completed:.0%}", str(r.completion_tokens),
             _joules(r.joules), _joules(r.joules_per_1k_output), f"{r.latency_s:.1f}", f"{r.mean_latency_s:.2f}",
             f"{r.load_s:.2f}", escape(energy_label(r.energy_source))] for r in data.roles]
    table = _table(["role", "model", "calls", "completed", "tokens out", "joules", "J/1k out", "latency s",
                    "s/call", "load s", "energy"], rows, {2, 3, 4, 5, 6, 7, 8, 9})
    return (f'<h2 id="energy">Energy and latency per role and model</h2>{table}'
            f"<h3>Joules</h3>{joule_bars}<h3>Mean latency per call</h3>{latency_bars}")


def operator_section(data: ReportData) -> str:
    order = ["keep", "discard", "pruned", "failed", "interrupted"]
    rows = [(op, [(float(counts.get(s, 0)), svg.STATUS_COLOURS[s], f"{op}: {counts.get(s, 0)} {s}")
                  for s in order if counts.get(s)]) for op, counts in data.operators.items()]
    chart = svg.stacked_bars(rows, label="trials per mutation operator by outcome", unit=" trials")
    files = sorted({f for by_file in data.acceptance.values() for f in by_file})
    rates = [[escape(op), *(_rate(by_file.get(f)) for f in files)] for op, by_file in data.acceptance.items()]
    return (f'<h2 id="operators">Mutation operators and their keeps</h2>{chart}{_legend(order)}'
            + _table(["operator", *order], [[escape(op), *(str(c.get(s, 0)) for s in order)]
                                            for op, c in data.operators.items()], {1, 2, 3, 4, 5})
            + "<h3>Keep rate per operator and file (keeps / trials that ran)</h3>"
            + _table(["operator", *files], rates, set(range(1, len(files) + 1))))


def _rate(found: tuple[int, int] | None) -> str:
    if not found:
        return "–"
    keeps, trials = found
    return f"{keeps}/{trials} ({keeps / trials:.0%})"


def importance_section(data: ReportData) -> str:
    imp = data.importances
    if imp.unavailable:
        body = f'<p class="empty">Optuna parameter importances {escape(imp.unavailable)}</p>'
    else:
        body = svg.bars([(k, v, f"{k}: {v:.3f}") for k, v in imp.values.items()], label="parameter importances",
                        unit="", colour="#7b61ff")
        if imp.caveat:
            body += f'<p class="muted">{escape(imp.caveat)}</p>'
    return f'<h2 id="importances">Optuna parameter importances</h2>{body}'


def commits_section(data: ReportData) -> str:
    if not data.log.entries and not data.log.restarts:
        return '<h2 id="commits">Commits</h2><p class="empty">No kept commits yet.</p>'
    def linked(e, text: str) -> str:  # another worker's keep has no section here: its evaluation is not here
        return text if e.worker else f'<a href="#trial-{e.trial}">{text}</a>'

    rows = [[escape(e.date.replace("T", " ")[:16]) + " UTC", linked(e, f"#{e.trial}"),
             linked(e, f"<code>{escape(e.commit[:10])}</code>"), escape(e.file),
             f'<span class="up">{e.delta:+.3f}</span>',
             '<span class="down">inside noise</span>' if e.inside_noise else _num(e.lower_bound, "+.3f"),
             _num(e.composite), _num(e.holdout_composite),
             _joules(e.joules_per_task), escape(e.operator),
             escape(e.shown_description)] for e in data.log.entries]
    # A new baseline (the user's commit on the branch) between the keeps: the deltas above it start from it.
    restarts = [(r.trial, [escape(r.date.replace("T", " ")[:16]) + " UTC", f"#{r.trial}",
                           f"<code>{escape(r.commit[:10])}</code>", "", "", "", _num(r.composite),
                           _num(r.holdout_composite), "-", "baseline", escape(r.description)])
                for r in data.log.restarts]
    keeps = [(e.trial, row) for e, row in zip(data.log.entries, rows)]
    rows = [row for _, row in sorted(keeps + restarts, key=lambda pair: pair[0], reverse=True)]
    return ('<h2 id="commits">Commits, newest first</h2>'
            '<p class="muted">delta: the mean paired difference over search tasks × seeds that the keep rule '
            'decided on; bound: its one-sided lower confidence bound ("inside noise": kept without one above '
            'zero, as before the paired rule).</p>'
            + _table(["date", "trial", "commit", "file", "delta", "bound", "composite", "holdout", "J/task",
                      "operator", "description"], rows, {4, 5, 6, 7, 8})
            + "".join(commit_detail(d) for d in data.commits))


def diff_html(lines: list[str]) -> str:
    out = []
    for line in lines:
        css = ("" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
               else "add" if line.startswith("+") else "del" if line.startswith("-") else "")
        out.append(f'<span class="{css}">{escape(line)}</span>' if css else escape(line))
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def task_rows(tasks: list[TaskComparison]) -> str:
    rows = []
    for t in tasks:
        b, a = t.before, t.after
        dims = ", ".join(f"{k} {_change((b.dimensions.get(k) if b else None), v, '.1f')}"
                         for k, v in (a.dimensions.items() if a else []))
        rows.append([escape(t.task_id), escape(t.split),
                     _change(b and b.composite, a and a.composite)
                     + (f" ({t.composite_delta:+.2f})" if t.composite_delta is not None else ""),
                     _change(b and b.score_r1, a and a.score_r1),
                     _change(b and b.criteria_passed, a and a.criteria_passed,
                             show=lambda v, total=(a or b).criteria_total: f"{int(v)}/{total}"),
                     _change(b and b.joules, a and a.joules, higher_is_better=False, show=_joules),
                     _change(b and b.seconds, a and a.seconds, higher_is_better=False), dims])
    return _table(["task", "split", "composite", "judge r1", "criteria passed", "joules", "seconds",
                   "rubric dimensions"], rows, {2, 3, 4, 5, 6})


def commit_detail(d: TrialDetail) -> str:
    return (f'<article id="trial-{d.number}"><h3>Trial {d.number} · commit <code>{escape(d.commit[:10])}</code> · '
            f"{escape(d.file)} · {escape(d.operator)}</h3>"
            f"<p>{escape(d.commit_subject or d.description)}<br><span class=\"muted\">idea: {escape(d.description)} · "
            f"compared with trial {d.before_trial} · composite {_change(d.composite_before, d.composite, '.3f')} · "
            f"holdout {_change(d.holdout_before, d.holdout_composite, '.3f')}</span>"
            + (f"<br><span class=\"muted\">{escape(evidence_line(d.evidence))}</span>" if d.evidence else "")
            + f"</p>{diff_html(d.diff)}{task_rows(d.tasks)}</article>")


def trials_section(data: ReportData) -> str:
    statuses = sorted({p.status for p in data.trials})
    options = "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in ["all", *statuses])
    rows = [[str(p.number), f'<span class="status-{escape(p.status)}">{escape(p.status)}</span>',
             _num(p.composite) + (" (partial)" if p.partial else ""), _num(p.delta, "+.3f"),
             _joules(p.joules_per_task), escape(p.file), escape(p.operator), escape(p.description)]
            for p in data.trials]
    attrs = [f'data-status="{escape(p.status)}"' for p in data.trials]
    return (f'<h2 id="trials">Every trial</h2><label>show <select id="status-filter">{options}</select></label>'
            + _table(["trial", "status", "composite", "delta", "J/task", "file", "operator", "description"], rows,
                     {2, 3, 4}, attrs='id="all-trials"', row_attrs=attrs))


def render(data: ReportData) -> str:
    """The whole page."""
    nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("composite", "composite"), ("pareto", "Pareto front"), ("energy", "energy"), ("operators", "operators"),
        ("importances", "importances"), ("commits", "commits"), ("trials", "all trials")))
    body = "".join([summary(data), f"<nav>{nav}</nav>", composite_chart(data), pareto_section(data),
                    energy_section(data), operator_section(data), importance_section(data), commits_section(data),
                    trials_section(data)])
    footer = (f'<footer class="muted"><p>Optuna storage: <code>{escape(data.storage)}</code> — open it with '
              f"<code>optuna-dashboard {escape(data.storage)}</code>. Energy figures labelled estimate are "
              "CPU or wall time × configured watts, not measurements.</p></footer>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>autoresearch · {escape(data.study)}</title>{ERROR_PROBE}{STYLE}</head>"
            f"<body>{body}{footer}{READY_SCRIPT}</body></html>\n")
