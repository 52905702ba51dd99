"""The evaluation report: its JSON shape, a markdown table, a text summary and bar plots.

:class:`Report` is what :func:`lake.eval.evaluate` returns and ``lake eval --json`` prints.
:func:`write_report` writes ``report.json``, ``report.md`` and the PNG bar plots (matplotlib,
Agg backend, so no display is needed):

* ``accuracy_binary.png``, ``accuracy_mcq.png``: accuracy per category of each question type;
* ``refexp.png``: mIoU and Acc@0.5 per referring-expression category;
* ``captions.png``: the caption metrics;
* ``by_<column>.png`` (with ``--by``): question accuracy and box mIoU per group value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from lake.errors import ConfigError
from lake.eval.captions import CAPTION_METRICS, INSTALL_HINT, NotComputed
from lake.eval.metrics import IOU_THRESHOLDS, AccuracyScore, BoxScore
from lake.eval.score import Scores


class Counts(TypedDict):
    """How many rows there were and how many were scored.

    Attributes:
        rows: Rows of the split.
        scored: Rows with a prediction (the ones scored).
        missing: Rows without a prediction (only with ``allow_missing``; not scored).
        by_type: Rows of the split per type.
    """

    rows: int
    scored: int
    missing: int
    by_type: dict[str, int]


class Report(TypedDict):
    """The result of an evaluation (JSON-ready).

    Attributes:
        lake: The lake's URL.
        release: The release evaluated.
        split: The split evaluated (``bench`` by default).
        predictions: Where the predictions came from: the file, ``python`` or
            ``baseline:<name>``.
        baseline: The baseline's name, or None for a model's predictions.
        seed: The seed of the ``random`` baseline (None otherwise).
        box_format: The format predicted boxes were read in (``any``: every format tried).
        image_size: The image side used to read ``pixel`` boxes (None when not given).
        by: The grouping column (``country``, ``season``, ``climate_zone``) or None.
        counts: Row counts.
        missing_ids: The IDs of the split without a prediction (sorted).
        scores: Every metric over the scored rows.
        groups: The same per value of ``by`` (empty without it).
        not_computed: Metrics left out, each with the reason.
    """

    lake: str
    release: str
    split: str
    predictions: str
    baseline: str | None
    seed: int | None
    box_format: str
    image_size: int | None
    by: str | None
    counts: Counts
    missing_ids: list[int]
    scores: Scores
    groups: dict[str, Scores]
    not_computed: list[NotComputed]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _acc_row(name: str, a: AccuracyScore) -> list[str]:
    return [name, str(a["n"]), str(a["correct"]), _pct(a["accuracy"]), str(a["unparsed"])]


def _box_row(name: str, b: BoxScore) -> list[str]:
    acc = [_pct(b["acc"][str(t)]) for t in IOU_THRESHOLDS]
    return [name, str(b["n"]), _pct(b["miou"]), *acc, str(b["unparsed"])]


def _summary_row(name: str, s: Scores) -> list[str]:
    qa, ref = s["qa"], s["refexp"]["overall"]
    binary = qa["by_type"].get("binary")
    mcq = qa["by_type"].get("mcq")
    caps = (s["captions"] or {"scores": {}})["scores"]
    return [
        name,
        str(s["rows"]),
        _pct(qa["overall"]["accuracy"]),
        _pct(binary["accuracy"] if binary else None),
        _pct(mcq["accuracy"] if mcq else None),
        _pct(ref["miou"]),
        _pct(ref["acc"]["0.5"]),
        _num(caps.get("BLEU-4")),
        _num(caps.get("CIDEr")),
    ]


def markdown(report: Report) -> str:
    """The report as markdown tables.

    Accuracy and IoU are in %, the caption metrics on pycocoevalcap's own scale.
    """
    s, c = report["scores"], report["counts"]
    lines = [
        f"# Evaluation of {report['predictions']} on split `{report['split']}`",
        "",
        f"Lake `{report['lake']}`, release `{report['release']}`; boxes read as "
        f"`{report['box_format']}`. Rows: {c['rows']}, scored {c['scored']}, "
        f"missing {c['missing']}.",
        "",
        "## Questions (binary and mcq): accuracy %",
        "",
    ]
    qa = s["qa"]
    rows = [_acc_row("all", qa["overall"])]
    for t, a in qa["by_type"].items():
        rows.append(_acc_row(t, a))
        rows += [_acc_row(f"{t} / {cat}", v) for cat, v in qa["by_category"][t].items()]
    lines += _table(["rows", "n", "correct", "accuracy %", "unparsed"], rows)
    lines += ["", "## Referring expressions: IoU %", ""]
    ref = s["refexp"]
    rows = [_box_row("all", ref["overall"])]
    rows += [_box_row(cat, v) for cat, v in ref["by_category"].items()]
    acc_names = [f"Acc@{t}" for t in IOU_THRESHOLDS]
    lines += _table(["rows", "n", "mIoU", *acc_names, "unparsed"], rows)
    lines += ["", "## Captions (pycocoevalcap)", ""]
    caps = s["captions"]
    if caps is None:
        lines.append("Not computed.")
    else:
        names = [m for m in CAPTION_METRICS if m in caps["scores"]]
        lines += _table(
            ["n", *names], [[str(caps["n"]), *(_num(caps["scores"][m]) for m in names)]]
        )
    if report["groups"]:
        lines += ["", f"## By {report['by']}", ""]
        header = [str(report["by"]), "rows", "QA %", "binary %", "mcq %", "mIoU %", "Acc@0.5 %"]
        rows = [_summary_row(g, v) for g, v in report["groups"].items()]
        lines += _table([*header, "BLEU-4", "CIDEr"], rows)
    if report["not_computed"]:
        lines += ["", "## Not computed", ""]
        lines += [f"* {n['metric']}: {n['reason']}" for n in report["not_computed"]]
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    """A few lines for the terminal."""
    s, c = report["scores"], report["counts"]
    qa, ref = s["qa"], s["refexp"]["overall"]
    parts = [
        f"{report['predictions']} on {report['split']} ({c['scored']} of {c['rows']} rows scored"
        + (f", {c['missing']} missing" if c["missing"] else "")
        + ")",
    ]
    for t, a in qa["by_type"].items():
        parts.append(f"  {t:<8} accuracy {_pct(a['accuracy'])} % ({a['correct']}/{a['n']})")
    acc = "  ".join(f"Acc@{t} {_pct(ref['acc'][str(t)])}" for t in IOU_THRESHOLDS)
    parts.append(f"  boxes    mIoU {_pct(ref['miou'])} %  {acc} (n={ref['n']})")
    caps = s["captions"]
    if caps is not None and caps["scores"]:
        shown = "  ".join(f"{m} {caps['scores'][m]:.4f}" for m in CAPTION_METRICS)
        parts.append(f"  captions {shown} (n={caps['n']})")
    for g, v in report["groups"].items():
        parts.append(
            f"  {report['by']}={g}: QA {_pct(v['qa']['overall']['accuracy'])} %, "
            f"mIoU {_pct(v['refexp']['overall']['miou'])} %"
        )
    return "\n".join(parts)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(f"the report's plots need matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(path: Path, title: str, labels: Sequence[str], series: dict[str, list[float]]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2), 3.6))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plots(report: Report, out: Path) -> list[Path]:
    """Write the bar plots of the report into ``out``; returns their paths."""
    s = report["scores"]
    written: list[Path] = []
    for t, cats in s["qa"]["by_category"].items():
        labels = list(cats)
        values = [100 * (cats[c]["accuracy"] or 0.0) for c in labels]
        title = f"{t} accuracy % by category ({report['predictions']})"
        written.append(_bars(out / f"accuracy_{t}.png", title, labels, {"accuracy %": values}))
    ref = s["refexp"]["by_category"]
    if ref:
        labels = list(ref)
        series = {
            "mIoU %": [100 * (ref[c]["miou"] or 0.0) for c in labels],
            "Acc@0.5 %": [100 * (ref[c]["acc"]["0.5"] or 0.0) for c in labels],
        }
        written.append(_bars(out / "refexp.png", "referring expressions", labels, series))
    caps = s["captions"]
    if caps is not None and caps["scores"]:
        names = [m for m in CAPTION_METRICS if m in caps["scores"]]
        values = [caps["scores"][m] for m in names]
        written.append(_bars(out / "captions.png", "captions", names, {"score": values}))
    if report["groups"]:
        labels = list(report["groups"])
        groups = report["groups"]
        series = {
            "QA accuracy %": [
                100 * (groups[g]["qa"]["overall"]["accuracy"] or 0.0) for g in labels
            ],
            "mIoU %": [100 * (groups[g]["refexp"]["overall"]["miou"] or 0.0) for g in labels],
        }
        path = out / f"by_{report['by']}.png"
        written.append(_bars(path, f"by {report['by']}", labels, series))
    return written


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the plots into the folder ``out`` (created).

    Returns:
        The files written.

    Raises:
        ConfigError: ``out`` exists and is not a folder, or matplotlib is missing.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return [out / "report.json", out / "report.md", *plots(report, out)]


__all__ = ["Counts", "Report", "markdown", "plots", "summary", "write_report"]
