"""gap.md: the multilingual gap analysis (`vgssl.evaluate.gap`) as markdown tables, all numbers in %."""

from __future__ import annotations

from vgssl.evaluate.gap import Estimate, GapReport, train_set_name


def markdown(report: GapReport) -> str:
    """gap.md: the errors, the gaps, the gains and the hypotheses as markdown tables."""

    def ci(e: Estimate) -> str:
        return f"{e.point:.2f} | [{e.low:.2f}, {e.high:.2f}]"

    lines = [
        "# Multilingual gap and grounding gain",
        "",
        f"Phone ABX, speaker = {report.speaker}, context = {report.context}. Layer: {report.layer_rule}.",
        f"Bootstrap: {report.bootstrap['replicates']} replicates over {report.bootstrap['over']}; "
        f"{report.bootstrap['interval']}. All numbers in %.",
        "",
        "## ABX error of each condition",
        "",
        "| eval language | objective | trained on | seeds | layer(s) | error % | 95 % CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.errors:
        seeds = ",".join("-" if s is None else str(s) for s in row.seeds)
        layers = ",".join(str(layer) for layer in row.layers)
        lines.append(
            f"| {row.eval_language} | {row.objective} | {train_set_name(row.train_languages)} | {seeds} "
            f"| {layers} | {ci(row.error)} |"
        )
    lines += [
        "",
        "## Multilingual gap (E_multi − E_mono) / E_mono",
        "",
        "| eval language | objective | multilingual set | gap % | 95 % CI |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.eval_language} | {r.label} | {r.train_languages} | {ci(r.value)} |" for r in report.gaps]
    lines += [
        "",
        "## Grounding gain (E_ssl-a − E_vgs+) / E_ssl-a",
        "",
        "| eval language | training | trained on | gain % | 95 % CI |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.eval_language} | {r.label} | {r.train_languages} | {ci(r.value)} |" for r in report.gains
    ]
    lines += [
        "",
        "## Hypotheses",
        "",
        "| scope | hypothesis | difference (points) | 95 % CI | replicates > 0 | held |",
        "|---|---|---|---|---|---|",
    ]
    for h in report.hypotheses:
        verdict = ("yes" if h.held else "no") + (
            " (CI excludes 0)" if h.ci_excludes_zero else " (CI includes 0)"
        )
        lines.append(f"| {h.scope} | {h.statement} | {ci(h.difference)} | {h.probability:.3f} | {verdict} |")
    if report.missing:
        lines += ["", "## Not computed", ""] + [f"* {item}" for item in report.missing]
    return "\n".join(lines) + "\n"
