"""A published run as a page of the documentation site, computed from its run directory when the
site builds (docs/hooks.py), so the page's numbers cannot drift from the committed run: the
verdict sentences, the facts of the run, the report's tables and its figures.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdbench.reports import plots
from kdbench.reports.markdown import render_markdown
from kdbench.reports.tables import ReportData, build
from kdbench.reports.verdicts import KINDS, pair_verdicts
from kdbench.results.read import read_run
from kdbench.util.markdown import md_escape
from kdbench.util.progress import elapsed

# the report's figures that need no torch (the docs site is built without it)
FIGURES = (
    (plots.noise_plot, "Gaussian noise"),
    (plots.attack_plot, "attacks"),
    (plots.corruption_plot, "corruptions"),
    (plots.difference_plot, "differences"),
)


def answer(data: ReportData) -> list[str]:
    """The verdict sentences, distilled students first: the answer the README quotes."""
    return [v.sentence() for kind, _ in KINDS for v in pair_verdicts(data) if v.kind == kind]


def facts(data: ReportData) -> list[str]:
    """What ran where, and how long it took, from the manifest."""
    man = data.run.manifest
    jobs = man.get("jobs") or []
    reused = [j for j in jobs if j.get("cached")]
    executor = man.get("executor") or {}
    threads = sorted({j.get("threads") for j in jobs if j.get("threads")})
    lines = [
        f"suite `{man.get('suite_name', '')}`, run `{man.get('run_id', '')}`, kdbench "
        f"{man.get('kdbench_version', '')}, "
        f"torch {man.get('torch', '')}, commit `{str(man.get('git_commit', ''))[:12]}`",
        f"{md_escape(man.get('device_name') or man.get('device', ''))}; "
        f"{executor.get('jobs', 1)} job(s) at once, {', '.join(map(str, threads)) or '?'} thread(s) each",
        md_escape(data.examples_note),
    ]
    if isinstance(man.get("wall_s"), (int, float)):
        ran = sum(float(j.get("wall_s") or 0) for j in jobs if not j.get("cached"))
        line = (
            f"this run's wall time {elapsed(man['wall_s'])} "
            f"({len(jobs) - len(reused)} job(s), {elapsed(ran)} of job time)"
        )
        if reused:
            earlier = sum(float(j.get("wall_s") or 0) for j in reused)
            line += f"; {len(reused)} job(s) reused from the job store, made in {elapsed(earlier)} of job time"
        lines.append(line)
    return lines


def _figures(data: ReportData) -> list[str]:
    out = []
    for pair in data.pairs:
        figs = [(plot(data, pair), label) for plot, label in FIGURES]
        imgs = [
            f'<img alt="{md_escape(f"{pair.distilled} vs {pair.baseline}: {label}")}" '
            f'src="{uri}" style="max-width: 49%">'
            for uri, label in figs
            if uri
        ]
        if imgs:
            out += [f"### {md_escape(pair.distilled)} vs {md_escape(pair.baseline)}", "", *imgs, ""]
    return out


def published_page(run_dir) -> str:
    """The Markdown of a published run's page (its headings start at level 2)."""
    run = read_run(Path(run_dir))
    data = build(run)
    out = ["## The answer", ""] + [f"- {md_escape(s)}" for s in answer(data)] + [""]
    out += ["## The run", ""] + [f"- {line}" for line in facts(data)] + [""]
    report = render_markdown(data).split("\n")
    start = next((i for i, line in enumerate(report) if line.startswith("## ")), len(report))
    body = [re.sub(r"^(#+) ", r"#\1 ", line) for line in report[start:]]  # under this page's sections
    out += ["## The report", "", *body, "", "## Figures", "", *_figures(data)]
    return "\n".join(out).rstrip() + "\n"
