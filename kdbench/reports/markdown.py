"""The report's tables as GitHub-flavoured Markdown, for a CI step summary or a pull-request
comment; every value goes through `md_escape` (kdbench.util.markdown)."""

from __future__ import annotations

from kdbench.reports import rows, verdicts
from kdbench.reports.calibration import CALIBRATION_NOTE, calibration_rows
from kdbench.reports.tables import MASKING_TEXT, STATISTICS_TEXT, ReportData
from kdbench.util.markdown import md_escape, table


def render_markdown(data: ReportData) -> str:
    out = [f"# {md_escape(data.title)}", ""]
    man = data.run.manifest
    facts = [f"{k} {man[k]}" for k in ("finished", "device", "device_name", "git_commit") if man.get(k)]
    if facts:
        out += [md_escape(" · ".join(facts)), ""]
    out += [md_escape(data.examples_note), ""]
    every = verdicts.pair_verdicts(data)
    if every:
        out += ["## At a glance", ""]
        for kind, heading in verdicts.KINDS:
            mine = [v for v in every if v.kind == kind]
            if mine:
                out += [f"**{md_escape(heading)}**", ""] + [f"- {md_escape(v.sentence())}" for v in mine] + [""]
    agreement = rows.agreement_rows(data)
    for pair in data.pairs:
        h = rows.pair_header(pair)
        out += [f"## {md_escape(h['title'])}", ""]
        bits = [h["seeds"], f"test: {h['design']}"]
        if h["teachers"]:
            bits.append(f"teacher: {h['teachers']}")
        bits += [f"teacher-student agreement {a['agreement']} %" for a in agreement if a["model"] == pair.distilled]
        out += [md_escape("; ".join(bits)), ""]
        header = ["metric", "baseline", h["role"], "Δ pp", "95% CI", "p", "p Holm", "MDD pp", "verdict"]
        header += [f"teacher {t}" for t in pair.teachers]
        body = []
        for r in rows.headline_rows(data, pair):
            mark = " *" if r["significant"] else ""
            metric = r["metric"] + (f" ⚠ {r['warning']}" if r["warning"] else "")
            body.append(
                [
                    metric,
                    r["baseline"],
                    r["distilled"],
                    r["diff"] + mark,
                    r["ci"],
                    r["p"],
                    r["p_holm"],
                    r["mdd"],
                    r["verdict"],
                    *r["teachers"],
                ]
            )
        out += [table(header, body, ["l", "r", "r", "r", "r", "r", "r", "r", "l"] + ["r"] * len(pair.teachers)), ""]
        diff_note = f" ({h['diff_note']})" if h["diff_note"] else ""
        out += [
            md_escape(
                f"Accuracy in %, {h['acc_note']}. Δ = distilled − baseline in percentage points{diff_note}; "
                "95% CI and p: method-level (seeds and test examples both vary), two-sided; p Holm "
                f"over the {data.holm_family} headline differences "
                f"(corruption cells: a family of {data.holm_detail}); MDD: the smallest difference "
                "these seeds detect with 80% power "
                "after that correction; * marks p Holm below 0.05."
            ),
            "",
        ]
        if data.mce_note:
            out += [md_escape(data.mce_note), ""]
        detail = rows.per_seed_pair_rows(pair)
        if detail:
            out += ["### Per seed pair: these trained networks (exact McNemar, two-sided, not corrected)", ""]
            out += [
                table(
                    ["metric", "seed", "baseline %", "distilled %", "Δ pp", "only baseline / only distilled", "p"],
                    [
                        [d["metric"], d["seeds"], d["baseline"], d["distilled"], d["diff"], d["discordant"], d["p"]]
                        for d in detail
                    ],
                ),
                "",
            ]
        calib = calibration_rows(data.run, pair.baseline, pair.distilled)
        if calib:
            out += ["### Calibration and fidelity", "", md_escape(CALIBRATION_NOTE), ""]
            out += [
                table(
                    ["metric", "data", "baseline", h["role"], "Δ", "95% CI", "p", "p Holm"],
                    [
                        [
                            c["metric"],
                            c["where"],
                            c["baseline"],
                            c["distilled"],
                            c["diff"],
                            c["ci"],
                            c["p"],
                            c["p_holm"],
                        ]
                        for c in calib
                    ],
                    ["l", "l", "r", "r", "r", "r", "r", "r"],
                ),
                "",
            ]
    if not data.pairs:
        out += ["This run compares no distilled student with a baseline.", ""]
    masking = rows.masking_rows(data)
    if masking:
        out += ["## ⚠ Gradient masking suspected", "", md_escape(MASKING_TEXT), ""]
        out += [
            table(
                ["model", "seed", "check", "ε", "value", "threshold"],
                [[m["model"], m["seed"], m["check"], m["eps"], m["value"], m["threshold"]] for m in masking],
            ),
            "",
        ]
    names, trows = rows.teacher_rows(data)
    if names:
        out += ["## Teachers", "", table(["metric", *names], [[r["metric"], *r["cells"]] for r in trows]), ""]
    if agreement:
        out += ["## Teacher-student agreement (clean)", ""]
        out += [
            table(
                ["student", "teacher(s)", "seeds", "agreement %", "per seed"],
                [[a["model"], a["teachers"], a["seeds"], a["agreement"], a["per_seed"]] for a in agreement],
            ),
            "",
        ]
    cols, crows = rows.corruption_matrix_rows(data)
    if cols:
        out += ["## Corruptions by model (accuracy %, mean over severities and seeds)", ""]
        out += [table(["corruption", *cols], [[r["metric"], *r["cells"]] for r in crows]), ""]
        if data.corruption_note:
            out += [md_escape(data.corruption_note), ""]
    out += [
        "## Statistics",
        "",
        md_escape(STATISTICS_TEXT.format(family=data.holm_family, detail=data.holm_detail)),
        "",
    ]
    return "\n".join(out)
