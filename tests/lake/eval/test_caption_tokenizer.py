"""The PTB tokenisation of the caption metrics: pycocoevalcap's tokens, on a read-only install.

``ptb_tokenize`` must give exactly the tokens of pycocoevalcap's own ``PTBTokenizer`` (compared
on tricky captions), and ``lake eval`` must score captions when pycocoevalcap's package folder
cannot be written to (pycocoevalcap's tokenizer writes its input file there): a read-only copy
of the package is put first on ``sys.path`` in a child process, so the real install is
untouched. As root, write permission is not checked unless the child loses
``CAP_DAC_OVERRIDE`` (``setpriv --bounding-set``); the child checks that it cannot write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lake.errors import ConfigError
from lake.eval.captions import CAPTION_METRICS, jdk_on_path, ptb_tokenize
from lake.vlm.rows import TextRow
from tests.lake.eval.helpers import perturbed, write_jsonl
from tests.support.lakes import TestLake

#: Captions that exercise the tokenizer: punctuation, quotes, brackets, contractions, unicode
#: (accents, CJK, an emoji outside the BMP), whitespace, an empty caption, a very long one, and
#: a ``\n`` inside a caption (made a space, by pycocoevalcap too).
TRICKY: dict[int, list[str]] = {
    1: [
        "A man's dog -- runs (fast)!",
        "He said \"hello\", 'ok'... `really`?",
        "Ünïcödé façade — naïve café; 東京 🚀",
    ],
    2: ["", "  spaces   everywhere  ", "line\nbreak\tand a tab"],
    3: ["U.S. e-mail isn't won't can't; {braces} [brackets] ?!?", "field " * 2000],
    4: ["$5.00 & 50% off @home #tag ``quoted''", "|||pipes||| a/b c\\d <tag>"],
    5: ["No punctuation at all", "...", ""],
    6: ["the last one."],
}

#: Line ends other than ``\n`` inside a caption, which Java's tokenizer also splits lines at.
BREAKS: dict[int, list[str]] = {
    1: ["carriage\rreturn", "form\ffeed"],
    2: ["line\u2028separator and\u2029paragraph", "vertical\vtab"],
    3: ["the last one."],
}

#: The child: the read-only copy first on sys.path, checks, then ``lake eval ARGS``.
CHILD = """
import os, sys
copy = sys.argv.pop(1)
sys.path.insert(0, copy)
import pycocoevalcap.meteor.meteor as meteor
import pycocoevalcap.tokenizer.ptbtokenizer as ptbtokenizer
for module in (meteor, ptbtokenizer):
    if not module.__file__.startswith(copy):
        sys.exit(f"{module.__name__} is not the read-only copy: {module.__file__}")
try:
    open(os.path.join(os.path.dirname(ptbtokenizer.__file__), "probe"), "w").close()
except PermissionError:
    pass
else:
    sys.exit("the copy of pycocoevalcap is writable: this test would check nothing")
from pipelines.cli import main
sys.argv[0] = "lake"
main()
"""


def _pycocoevalcap_tokens(captions: dict[int, list[str]]) -> dict[int, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # type: ignore[import-untyped]

    with jdk_on_path():
        tokens: dict[int, list[str]] = PTBTokenizer().tokenize(
            {k: [{"caption": c} for c in v] for k, v in captions.items()}
        )
    return tokens


def test_other_line_breaks_are_spaces_not_a_shift_of_every_later_caption() -> None:
    ours = ptb_tokenize(BREAKS)
    spaced = {k: [" ".join(c.split()) for c in v] for k, v in BREAKS.items()}
    assert ours == _pycocoevalcap_tokens(spaced)
    assert ours[1] == ["carriage return", "form feed"]
    assert ours[3] == ["the last one"]  # pycocoevalcap gives it "tab" and drops "the last one"


def test_tokens_equal_pycocoevalcaps_own_tokenizer() -> None:
    ours = ptb_tokenize(TRICKY)
    assert ours == _pycocoevalcap_tokens(TRICKY)
    assert ours[1][0] == "a man 's dog runs -lrb- fast -rrb-"  # lower case, punctuation gone
    assert (
        ours[3][0] == "u.s. e-mail is n't wo n't ca n't -lcb- braces -rcb- -lsb- brackets -rsb- ?!?"
    )
    assert ours[2][:2] == ["", "spaces everywhere"]
    assert ptb_tokenize({}) == {}


def test_a_broken_tokenizer_install_says_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from pycocoevalcap.tokenizer import ptbtokenizer  # type: ignore[import-untyped]

    monkeypatch.setattr(ptbtokenizer, "STANFORD_CORENLP_3_4_1_JAR", "missing.jar")
    with pytest.raises(ConfigError, match=r"PTB tokenizer .* exited with status 1: .*PTBTokenizer"):
        ptb_tokenize({1: ["a field"]})


def _read_only_copy(dest: Path) -> Path:
    """A copy of the installed pycocoevalcap package under ``dest``, every file read-only."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    package = Path(ptbtokenizer.__file__).parents[1]
    shutil.copytree(package, dest / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    return dest


def _without_write_override() -> list[str]:
    """The prefix that takes root's power to write anywhere from the child (empty for others)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, a read-only folder needs setpriv (util-linux) to stay read-only")
    return ["setpriv", "--bounding-set=-dac_override"]


def test_lake_eval_scores_captions_on_a_read_only_pycocoevalcap(
    eval_lake: TestLake, bench_rows: list[TextRow], tmp_path: Path
) -> None:
    copy = _read_only_copy(tmp_path / "site")
    files = sorted(copy.rglob("*"))
    preds = write_jsonl(tmp_path / "preds.jsonl", perturbed(bench_rows))
    cmd = [*_without_write_override(), sys.executable, "-c", CHILD, str(copy)]
    cmd += ["eval", str(preds), "--lake", str(eval_lake.root), "--json"]
    env = {**os.environ, "LAKE_URL": "", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        captions = json.loads(proc.stdout)["scores"]["captions"]
        assert captions["n"] == 1 and list(captions["scores"]) == list(CAPTION_METRICS)
        assert 0 < captions["scores"]["BLEU-1"] < 1 and 0 < captions["scores"]["METEOR"] < 1
        assert sorted(copy.rglob("*")) == files  # nothing was written into the package
    finally:
        for path in [copy, *copy.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
