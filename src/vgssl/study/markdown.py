"""`report.md`, rendered from the report dictionary of `vgssl.study.report` alone (so both agree)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vgssl.study.progress import format_duration

PAPER_STATEMENTS = {
    "audio-only gap > grounded gap": ("gap ssl-a", "gap vgs+"),
    "multilingual grounding gain > monolingual grounding gain": ("gain multilingual", "gain mono"),
}
# A language-ABX error this close to chance (50 %) says the task found no language information to compare
# (measured: every model of the demo, and normalised MFCC, at 50.7–52.6 %).
LANGUAGE_ABX_NEAR_CHANCE = 45.0

QUANTITY_NAMES = {
    "gap ssl-a": "multilingual gap, audio-only (SSL-A)",
    "gap vgs+": "multilingual gap, grounded (VGS+)",
    "gain mono": "grounding gain, monolingual models",
    "gain multilingual": "grounding gain, multilingual models",
}


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _ci(estimate: dict[str, float] | None) -> str:
    if estimate is None:
        return "—"
    return f"{estimate['point']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"


def _hours_seen(seen: dict[str, float] | None) -> str:
    if seen is None:
        return "—"
    total = sum(seen.values())
    return f"{total:.2f} ({seen['captions']:.2f} with an image)" if seen.get("captions") else f"{total:.2f}"


def _setup(setup: dict[str, Any]) -> list[str]:
    budget = setup["audio_budget_hours"]
    lines = [
        "## Setup",
        "",
        f"Corpus `{setup['corpus']['path']}`:",
        "",
        "```text",
        setup["corpus"]["summary"],
        "```",
        "",
    ]
    difficulty = setup["corpus"]["difficulty"]
    if difficulty:
        lines += [f"Difficulty measure: {difficulty['measure']}.", ""]
    lines += [
        f"Grid: objectives {', '.join(setup['objectives'])} × training languages "
        f"({', '.join(setup['languages'])}: each alone, all together"
        + (", every pair" if setup["pairwise"] else "")
        + f") × seeds {', '.join(map(str, setup['seeds']))}; {setup['nproc_per_node']} process(es) per run, "
        f"{setup['parallel_runs']} run(s) at a time.",
        "",
        setup["control_statement"],
        "",
        (
            f"Audio budget: {budget:.3f} h of audio-only speech per run, the same for every run (the "
            "smallest language's training speech), split equally over a run's languages."
            if budget is not None
            else "Audio budget: `train.data.hours` of the study config."
        ),
        "",
        "### Runs and compute",
        "",
    ]
    rows = [
        (
            c["label"], c["control"] or "(grounded)", c["state"], format_duration(c["wall_seconds"]),
            f"{c['steps']} / {c['max_steps']}",
            _hours_seen(c["hours_seen"]),
            f"{c['mixture']}, {c['budget_hours']:.3f} h", c["precision"],
            f"[train.yaml]({c['config']}), [run]({c['run_dir']}), [log]({c['log']})",
        )
        for c in setup["compute"]
    ]  # fmt: skip
    header = ["run", "control", "state", "wall time", "steps", "audio heard (h)", "budget", "precision"]
    header.append("files")
    return lines + _table(header, rows) + _environment(setup)


def _environment(setup: dict[str, Any]) -> list[str]:
    environment = setup["environment"]
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items() if version)
    hardware = f"{environment['cpu']} ({environment['cpu_count']} cores"
    hardware += f"; {', '.join(environment['cpu_flags'])})" if environment["cpu_flags"] else ")"
    if environment["gpus"]:
        hardware += "; GPUs: " + ", ".join(environment["gpus"])
    runs_at_once = setup["parallel_runs"]
    commit = environment["vgssl_commit"] or "unknown (not a git checkout)"
    return [
        "### Reproducibility",
        "",
        f"Computed with {versions}; vgssl commit {commit}; {hardware}; {runs_at_once} run(s) at once.",
        "",
        setup["reproducibility"],
        "",
    ]


def _phone_abx(report: dict[str, Any]) -> list[str]:
    rows = report["phone_abx"]
    lines = ["## Phone ABX", ""]
    if not rows:
        return [*lines, "No phone ABX result.", ""]
    languages = list(dict.fromkeys(row["eval_language"] for row in rows))
    models = list(dict.fromkeys((row["model"], row["label"]) for row in rows))
    failed = {f["model"] for f in report["failures"]}
    kinds = ("chosen on valid", "best on test", "fixed")
    for speaker in dict.fromkeys(row["speaker"] for row in rows):
        context = rows[0]["context"]
        lines += [
            f"### {speaker}-speaker, {context}-context (test error %, chance 50 %)",
            "",
            "Chosen on valid: the test error at the layer (in brackets) with the lowest error on the valid "
            "items — the reported number; † marks a layer chosen on the test items for want of a valid "
            "result (see the warnings). Best on test: the lowest test error, for reference only (choosing on "
            "test flatters a model). Fixed: the config's `evaluation.fixed_layer`, else the middle hidden "
            "state.",
            "",
        ]
        by_key = {(r["model"], r["eval_language"]): r for r in rows if r["speaker"] == speaker}
        header = ["model"] + [f"{lang} {kind}" for lang in languages for kind in kinds]
        table = []
        for name, label in models:
            cells = [label]
            for language in languages:
                row = by_key.get((name, language))
                if row is None:
                    cells += ["failed" if name in failed else "—"] * len(kinds)
                else:
                    cells += [
                        _layer_cell(row["error"], row["layer"], row["layer_chosen_on"]),
                        f"{row['test_best_error']:.2f} (L{row['test_best_layer']})",
                        f"{row['fixed_error']:.2f} (L{row['fixed_layer']})",
                    ]
            table.append(cells)
        lines += _table(header, table)
    return lines


def _layer_cell(error: float, layer: int, chosen_on: str) -> str:
    return f"{error:.2f} (L{layer}{'†' if chosen_on == 'test' else ''})"


def _warnings(report: dict[str, Any]) -> list[str]:
    warnings = report.get("warnings") or []
    if not warnings:
        return []
    return ["## Warnings", "", *[f"* {warning}" for warning in warnings], ""]


def _seeds(gap: dict[str, Any]) -> list[str]:
    """Each condition's error per seed, its mean, between-seed SD and interval over seeds and cells."""
    rows = gap["errors"]
    several = any(len(row["seeds"]) > 1 for row in rows)
    lines = [
        "## Phone ABX per condition, over seeds",
        "",
        f"Test error % ({gap['speaker']}-speaker, {gap['context']}-context) of every seed at its layer, "
        "their mean, the between-seed standard deviation and the mean's 95 % interval over "
        + ("seeds and ABX cells." if several else "ABX cells only (one seed: no training variance)."),
        "",
    ]
    table = [
        (
            row["eval_language"], row["objective"], "+".join(row["train_languages"]),
            ", ".join(f"{error:.2f} (s{seed}, L{layer})" for seed, error, layer
                      in zip(row["seeds"], row["seed_errors"], row["layers"], strict=True)),
            _ci(row["error"]), "—" if row["seed_sd"] is None else f"{row['seed_sd']:.2f}",
        )
        for row in rows
    ]  # fmt: skip
    header = ["evaluated on", "objective", "trained on", "per seed", "mean [95 % CI]", "between-seed SD"]
    return lines + _table(header, table)


def _gap(report: dict[str, Any]) -> list[str]:
    gap = report["gap_analysis"]
    if "error" in gap:
        return ["## Multilingual gap and grounding gain", "", f"Not computed: {gap['error']}", ""]
    lines = [
        *_seeds(gap),
        "## Multilingual gap (audio-only vs grounded)",
        "",
        f"(E_multi − E_mono) / E_mono in %, phone ABX {gap['speaker']}-speaker, {gap['context']}-context; "
        f"layer: {gap['layer_rule']}; 95 % bootstrap interval over {gap['bootstrap']['over']}.",
        "",
    ]
    lines += _table(
        ["evaluated on", "objective", "multilingual set", "gap % [95 % CI]"],
        [(r["eval_language"], r["label"], r["train_languages"], _ci(r["value"])) for r in gap["gaps"]],
    )
    lines += ["## Grounding gain (monolingual vs multilingual)", "", "(E_ssl-a − E_vgs+) / E_ssl-a in %.", ""]
    lines += _table(
        ["evaluated on", "training", "trained on", "gain % [95 % CI]"],
        [(r["eval_language"], r["label"], r["train_languages"], _ci(r["value"])) for r in gap["gains"]],
    )
    if gap["missing"]:
        lines += ["Not computed (missing runs):", ""] + [f"* {item}" for item in gap["missing"]] + [""]
    return lines


def _hypotheses(report: dict[str, Any]) -> list[str]:
    lines = ["## The paper's two hypotheses", ""]
    comparison = {row["quantity"]: row for row in report["paper_comparison"]}
    lines += _table(
        ["quantity (average over evaluated languages)", "ours % [95 % CI]", "paper %"],
        [(QUANTITY_NAMES[key], _ci(row["ours"]), f"{row['paper']:.2f}") for key, row in comparison.items()],
    )
    hypotheses = [h for h in report["gap_analysis"].get("hypotheses", []) if h["scope"] == "average"]
    single_seed = len(report["setup"]["seeds"]) == 1
    for statement, (first, second) in PAPER_STATEMENTS.items():
        paper = f"the paper: {comparison[first]['paper']:.2f} % vs {comparison[second]['paper']:.2f} % (held)"
        found = next((h for h in hypotheses if h["statement"] == statement), None)
        if found is None:
            lines.append(f"* **{statement}**: not testable here (missing runs); {paper}.")
            continue
        # A point estimate on the right side of 0 is not a finding while its interval straddles 0.
        if found["ci_excludes_zero"]:
            verdict = "held" if found["held"] else "did not hold (the opposite is significant)"
        else:
            verdict = (
                "not established (" + ("leans towards holding" if found["held"] else "leans against") + ")"
            )
        certainty = (
            "its 95 % interval excludes 0" if found["ci_excludes_zero"] else "its 95 % interval includes 0"
        )
        difference = found["difference"]
        half_width = (difference["high"] - difference["low"]) / 2
        share = "" if single_seed else f", {100 * found['probability']:.1f} % of the replicates above 0"
        lines.append(
            f"* **{statement}**: {verdict} here — difference {_ci(difference)} points, {certainty}{share}; "
            f"the smallest difference this study could detect is about ±{half_width:.1f} points (the "
            f"interval's half-width); {paper}."
        )
    if single_seed:
        lines += [
            "",
            "One seed per condition: training variance — the largest source of noise at this scale — is not "
            "measured. The intervals above resample ABX cells of one trained model each and are too narrow "
            "for a verdict; give the study several `seeds` to measure it.",
        ]
    return [*lines, ""]


def _language_abx(report: dict[str, Any]) -> list[str]:
    rows = report["language_abx"]
    lines = [
        "## Language ABX",
        "",
        "Error % (lower = more language information; chance 50 %). There are no valid language items, so "
        "the best layer here is the best on the test items.",
        "",
    ]
    if not rows:
        return [*lines, "Not evaluated.", ""]
    table = [
        (r["label"], ", ".join(r["languages"]), r["best_layer"], f"{r['best_error']:.2f}", r["fixed_layer"],
         f"{r['fixed_error']:.2f}")
        for r in rows
    ]  # fmt: skip
    lines += _table(["model", "languages", "best layer", "error %", "fixed layer", "error %"], table)
    near_chance = [r["label"] for r in rows if r["best_error"] >= LANGUAGE_ABX_NEAR_CHANCE]
    if near_chance:
        which = "every model" if len(near_chance) == len(rows) else ", ".join(near_chance)
        lines += [
            f"Near chance (error ≥ {LANGUAGE_ABX_NEAR_CHANCE:g} %): {which}. At that level the task finds no "
            "language information to compare; do not read the differences between these rows.",
            "",
        ]
    return lines


def _retrieval(report: dict[str, Any]) -> list[str]:
    rows = report["retrieval"]
    lines = ["## Retrieval", "", "Recall@k in % on the test captions (chance in brackets).", ""]
    if not rows:
        return [*lines, "No VGS+ run was evaluated.", ""]

    def recalls(row: dict[str, Any], direction: str) -> list[str]:
        return [f"{value:.1f} ({row['chance'][direction][k]:.1f})" for k, value in row[direction].items()]

    header = ["model", "captions", "images"]
    header += [f"speech→image {k}" for k in rows[0]["speech_to_image"]]
    header += [f"image→speech {k}" for k in rows[0]["image_to_speech"]]
    table = [
        [f"{r['label']} ({r['language']})", r["captions"], r["images"],
         *recalls(r, "speech_to_image"), *recalls(r, "image_to_speech")]
        for r in rows
    ]  # fmt: skip
    return lines + _table(header, table)


def _learning(report: dict[str, Any]) -> list[str]:
    rows = report["learning"]
    lines = [
        "## Learning happened",
        "",
        "Phone ABX test error % of each trained model at its layer chosen on valid, against each "
        "baseline's at its own layer chosen on valid († = chosen on test, see the warnings); Δ = ours − "
        "theirs in points with a paired 95 % bootstrap interval over the shared ABX cells; better or worse "
        "when the whole interval is below or above 0.",
        "",
    ]
    if not rows:
        return [*lines, "No trained model was evaluated.", ""]
    names = list(dict.fromkeys(name for row in rows for name in row["baselines"]))
    header = ["model", "evaluated on", "error %"] + [f"vs {name}: error %, Δ" for name in names]
    table = []
    for row in rows:
        cells = [
            row["label"],
            row["eval_language"],
            _layer_cell(row["error"], row["layer"], row["layer_chosen_on"]),
        ]
        for name in names:
            other = row["baselines"].get(name)
            if other is None:
                cells.append("—")
                continue
            theirs = _layer_cell(other["error"], other["layer"], other["layer_chosen_on"])
            cells.append(f"{theirs}, Δ {_ci(other['difference'])}: {other['verdict']}")
        table.append(cells)
    return lines + _table(header, table)


def _failures(report: dict[str, Any]) -> list[str]:
    failures = report["failures"]
    if not failures:
        return []
    lines = ["## Failures", ""]
    for failure in failures:
        if "missing_cells" in failure:
            lines.append("* gap and gain cells left out: " + "; ".join(failure["missing_cells"]))
            continue
        missing = ", ".join(f"`{path}`" for path in failure["missing_results"]) or "none"
        error = (failure["error"] or "").splitlines()[0] if failure["error"] else "unknown"
        lines.append(
            f"* **{failure['label']}**: {failure['stage']} failed: {error} ([log]({failure['log']})); "
            f"missing results: {missing}"
        )
    return [*lines, ""]


def _figure(report: dict[str, Any], name: str) -> list[str]:
    path = report["figures"].get(name)
    return [f"![{name.replace('_', ' ')}]({path})", ""] if path else []


def render_markdown(report: dict[str, Any]) -> str:
    setup = report["setup"]
    lines = [
        "# vgssl study report",
        "",
        f"Study config `{setup['config']}`, written {report['generated']} by vgssl "
        f"{report['vgssl_version']}. Every number is read from the result files under this directory "
        "(`runs/*/results`, `baselines/*/results`, `runs/*/status.json`, `runs/*/train/`) or computed from "
        "them; the full data is in `report.json`.",
        "",
    ]
    lines += _warnings(report)
    lines += _setup(setup)
    lines += _phone_abx(report) + _figure(report, "abx_layers")
    lines += _gap(report) + _figure(report, "gaps")
    lines += _hypotheses(report)
    lines += _language_abx(report)
    lines += _retrieval(report)
    lines += ["## Training curves", "", *_figure(report, "training_curves")]
    lines += _learning(report)
    lines += _failures(report)
    lines += ["## Conventions", ""]
    for key, value in report["conventions"].items():
        lines.append(f"* {key.replace('_', ' ')}: {value}")
    return "\n".join(lines) + "\n"
