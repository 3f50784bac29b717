"""Word n-gram language models (ARPA files, modified Kneser-Ney) and spelling lexicons.

An ARPA file stores, for every n-gram ``h w`` seen in training, ``log10 p(w | h)`` and, for
every context ``h`` that was extended, a backoff weight ``log10 b(h)``. An unseen ``h w`` is
scored as ``log10 b(h) + log10 p(w | h')``, where ``h'`` drops the oldest word of ``h``.

The lexicon tells a lexicon-constrained CTC beam search (torchaudio's ``ctc_decoder``, from
flashlight-text) how each word is spelt in the acoustic model's tokens, one word a line::

    enter e n t e r |

``|`` is the word-boundary token: the decoder's name for :data:`speechrnn.text.SPACE`.

Example::

    from speechrnn.lm import build_arpa, read_arpa, write_arpa

    write_arpa("lm.arpa", build_arpa(["go forward ten", "go back two"], order=3))
    lm = read_arpa("lm.arpa")
    lm.score(("<s>", "go"), "back")  # log10 p(back | <s> go), about -0.5
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from .files import write_atomic
from .text import BLANK, SPACE, Tokenizer, normalize_text, unspellable

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
WORD_BOUNDARY = "|"
# ARPA convention for the probability of <s>, which starts every sentence and is never predicted.
BOS_LOG_PROB = -99.0
# What KenLM assumes for an ARPA file without <unk>.
MISSING_UNK_LOG_PROB = -100.0
# Modified Kneser-Ney discounts (D1, D2, D3+) used where the count-of-counts formula is undefined
# or leaves its valid range 0 < Dr < r: D(c) = c / 2, capped at c = 3.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Ngram = tuple[str, ...]


class LMError(ValueError):
    """A malformed ARPA or lexicon file; the message names the file and line."""


# ---------------------------------------------------------------------------------------------
# Building: interpolated modified Kneser-Ney (Chen & Goodman 1998), written in backoff form.
#
# Written here because no maintained pip package writes modified-KN ARPA files: KenLM's lmplz
# is C++ only and NLTK's language models have no ARPA export. Pure Python, so it suits
# transcript-sized corpora (AN4: ~1k sentences; up to a few million words).
# ---------------------------------------------------------------------------------------------


def _text_lines(path: Path):
    """``(line number, line)`` of a UTF-8 text file; a line that is not UTF-8 raises
    :class:`LMError` naming the file and line."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LMError(f"{path}:{line_no}: not UTF-8 text ({error.reason} at byte {error.start} of the line)") from None


def modified_kn_discounts(n1: int, n2: int, n3: int, n4: int) -> tuple[float, float, float]:
    """Discounts ``(D1, D2, D3+)`` for one order from its count-of-counts.

    ``nr`` is the number of n-grams whose (adjusted) count is exactly ``r``. With
    ``Y = n1 / (n1 + 2 n2)``: ``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``, ``D3+ = 3 - 4Y n4/n3``.

    Fallback (tiny corpora, where some ``nr`` are zero): each ``Dr`` whose formula divides by
    zero, or whose value is outside ``0 < Dr < r`` (a count-``r`` n-gram would lose all its own
    mass, or gain mass), is replaced by ``FALLBACK_DISCOUNTS[r - 1]`` = ``r / 2``.
    """
    y = n1 / (n1 + 2 * n2) if n1 > 0 else None
    discounts = []
    for r, (numerator, denominator) in enumerate(((n2, n1), (n3, n2), (n4, n3)), 1):
        value = r - (r + 1) * y * numerator / denominator if y is not None and denominator > 0 else None
        discounts.append(value if value is not None and 0 < value < r else FALLBACK_DISCOUNTS[r - 1])
    return discounts[0], discounts[1], discounts[2]


def _count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter[Ngram]]:
    """Raw counts of the n-grams of ``<s> words </s>``; ``counts[k - 1]`` holds the k-grams.

    The unigram ``<s>`` is left out: it is never predicted.
    """
    counts: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for words in sentences:
        tokens = (BOS, *words, EOS)
        for k in range(1, order + 1):
            for start in range(1 if k == 1 else 0, len(tokens) - k + 1):
                counts[k - 1][tokens[start : start + k]] += 1
    return counts


def _adjusted_counts(raw: list[Counter[Ngram]]) -> list[dict[Ngram, int]]:
    """Kneser-Ney counts: raw counts at the highest order and for n-grams starting with ``<s>``,
    otherwise continuation counts (the number of distinct words seen just before the n-gram)."""
    adjusted: list[dict[Ngram, int]] = [dict(raw[-1])]
    for k in range(len(raw) - 1, 0, -1):  # k-grams from the distinct (k + 1)-grams
        left_extensions = Counter(ngram[1:] for ngram in raw[k])
        adjusted.insert(0, {ngram: count if ngram[0] == BOS else left_extensions[ngram] for ngram, count in raw[k - 1].items()})
    return adjusted


def _discount_table(counts: dict[Ngram, int]) -> tuple[float, float, float]:
    count_of_counts = Counter(c for c in counts.values() if c <= 4)
    return modified_kn_discounts(*(count_of_counts[r] for r in range(1, 5)))


def _kneser_ney(sentences: Iterable[Sequence[str]], order: int) -> tuple[dict[Ngram, float], dict[Ngram, float]]:
    """Estimate the model: ``(log10 p for every n-gram, log10 backoff for every extended context)``."""
    adjusted = _adjusted_counts(_count_ngrams(sentences, order))
    adjusted[0].setdefault((UNK,), 0)
    probs: list[dict[Ngram, float]] = []  # probabilities (not logs) per order
    gammas: dict[Ngram, float] = {}
    for counts in adjusted:
        d = (0.0, *_discount_table(counts))  # d[min(c, 3)] = D(c)
        totals: dict[Ngram, int] = defaultdict(int)
        mass: dict[Ngram, float] = defaultdict(float)  # D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)
        for ngram, count in counts.items():
            totals[ngram[:-1]] += count
            mass[ngram[:-1]] += d[min(count, 3)]
        for context, total in totals.items():
            gammas[context] = mass[context] / total
        lower = probs[-1] if probs else None
        uniform = 1.0 / len(counts)  # over every word, </s> and <unk>
        probs.append(
            {
                ngram: (count - d[min(count, 3)]) / totals[ngram[:-1]]
                + gammas[ngram[:-1]] * (lower[ngram[1:]] if lower is not None else uniform)
                for ngram, count in counts.items()
            }
        )
    log_probs = {ngram: math.log10(p) for table in probs for ngram, p in table.items()}
    log_probs[(BOS,)] = BOS_LOG_PROB
    backoffs = {context: math.log10(gamma) for context, gamma in gammas.items() if context}
    return log_probs, backoffs


def _estimate(sentences: Iterable[str], order: int) -> tuple[list[list[str]], dict[Ngram, float], dict[Ngram, float]]:
    """Check the arguments, split the sentences into words and estimate the model."""
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")
    split = []
    for sentence in sentences:
        words = sentence.split()
        if BOS in words or EOS in words:
            raise ValueError(f"sentences must not contain {BOS} or {EOS} (they are added), got {sentence!r}")
        if words:
            split.append(words)
    if not split:
        raise ValueError("no words to train a language model on (all sentences are empty)")
    longest = highest_order(split)
    if order > longest:
        raise ValueError(f"order {order}: the longest sentence has {longest - 2} word{'s' * (longest != 3)} ({longest} tokens with <s> and </s>), so it holds no {order}-grams; use an order of at most {longest}")
    return (split, *_kneser_ney(split, order))


def highest_order(sentences: Iterable[Sequence[str]]) -> int:
    """The highest n-gram order that sentences (lists of words) hold: the longest one's words
    with ``<s>`` and ``</s>``; :func:`build_arpa` refuses a higher one."""
    return max(map(len, sentences), default=0) + 2


def _format_arpa(log_probs: dict[Ngram, float], backoffs: dict[Ngram, float]) -> str:
    by_order: dict[int, list[Ngram]] = defaultdict(list)
    for ngram in log_probs:
        by_order[len(ngram)].append(ngram)
    lines = ["\\data\\"] + [f"ngram {k}={len(by_order[k])}" for k in sorted(by_order)]
    for k in sorted(by_order):
        lines += ["", f"\\{k}-grams:"]
        for ngram in sorted(by_order[k]):
            line = f"{log_probs[ngram]:.7g}\t{' '.join(ngram)}"
            lines.append(line + f"\t{backoffs[ngram]:.7g}" if ngram in backoffs else line)
    return "\n".join(lines + ["", "\\end\\", ""])


def build_arpa(sentences: Iterable[str], order: int = 3) -> str:
    """Train an interpolated modified Kneser-Ney word n-gram model and return it as ARPA text.

    Args:
        sentences: normalised transcripts (see :func:`speechrnn.text.normalize_text`), words
            separated by spaces; ``<s>`` and ``</s>`` are added, empty sentences skipped.
        order: the highest n-gram order (1 for unigrams).

    Returns:
        ARPA text. Probabilities and backoff weights are log10. The unigram table holds every
        word, ``</s>``, ``<unk>`` (with the mass the uniform distribution gives it) and ``<s>``
        (log10 probability -99).

    Raises:
        ValueError: ``order < 1`` or above the longest sentence's length with ``<s>`` and
            ``</s>``, no words at all, or a sentence containing ``<s>``/``</s>``.
    """
    _, log_probs, backoffs = _estimate(sentences, order)
    return _format_arpa(log_probs, backoffs)


def write_arpa(path: str | os.PathLike, text: str) -> None:
    """Write ARPA text atomically (readers never see a half-written file)."""
    write_atomic(path, text)


# ---------------------------------------------------------------------------------------------
# Reading and scoring.
# ---------------------------------------------------------------------------------------------


class ArpaModel:
    """A backoff n-gram model, held in plain dicts for fast scoring.

    Args:
        log_probs: ``log10 p(w | h)`` keyed by the n-gram ``(*h, w)``.
        backoffs: ``log10 b(h)`` keyed by the context ``h``; missing contexts back off with 0.

    Example::

        lm = read_arpa("lm.arpa")
        lm.sentence_logprob(["go"])  # == lm.score(("<s>",), "go") + lm.score(("<s>", "go"), "</s>")
    """

    def __init__(self, log_probs: dict[Ngram, float], backoffs: dict[Ngram, float]):
        if not log_probs:
            raise ValueError("an n-gram model needs at least one n-gram")
        self.log_probs = log_probs
        self.backoffs = backoffs
        self.order = max(map(len, log_probs))
        self._known = frozenset(ngram[0] for ngram in log_probs if len(ngram) == 1)
        if UNK not in self._known:
            raise ValueError(f"the unigram table must contain {UNK}")

    @property
    def vocabulary(self) -> set[str]:
        """The words of the model, without ``<s>``, ``</s>`` and ``<unk>``."""
        return set(self._known - {BOS, EOS, UNK})

    def score(self, context_words: tuple[str, ...], word: str) -> float:
        """``log10 p(word | context_words)`` with ARPA backoff; unknown words count as ``<unk>``.

        Only the last ``order - 1`` context words matter; start a sentence with ``("<s>",)``.
        """
        if word not in self._known:
            word = UNK
        context = tuple(context_words[len(context_words) - self.order + 1 :]) if self.order > 1 else ()
        if not self._known.issuperset(context):
            context = tuple(w if w in self._known else UNK for w in context)
        backoff = 0.0
        for start in range(len(context) + 1):
            log_prob = self.log_probs.get(context[start:] + (word,))
            if log_prob is not None:
                return backoff + log_prob
            backoff += self.backoffs.get(context[start:], 0.0)
        raise AssertionError("unreachable: every known word has a unigram")

    def sentence_logprob(self, words: list[str]) -> float:
        """``log10 p(words </s> | <s>)``: the sum of the words' scores and of ``</s>``'s."""
        context: tuple[str, ...] = (BOS,)
        total = 0.0
        for word in [*words, EOS]:
            total += self.score(context, word)
            context = (*context, word)[-(self.order - 1) :] if self.order > 1 else ()
        return total


_COUNT_LINE = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
_SECTION_LINE = re.compile(r"\\(\d+)-grams:")


def _parse_number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LMError(f"{where}: {what} {text!r} is not a number") from None
    if math.isnan(value):
        raise LMError(f"{where}: {what} is NaN")
    return value


def read_arpa(path: str | os.PathLike) -> ArpaModel:
    """Read and validate an ARPA file.

    Raises:
        LMError: empty file, no ``\\data\\`` header, bad ``ngram N=COUNT`` lines, sections out of
            order or with another number of entries than declared, lines with the wrong number of
            fields or a non-numeric or positive log10 probability, duplicate n-grams, no ``<s>``
            or ``</s>`` unigram, or no ``\\end\\``. The message names the file and line.

    A missing ``<unk>`` gets log10 probability -100, as KenLM does.
    """
    path = Path(path)
    declared: dict[int, int] = {}
    log_probs: dict[Ngram, float] = {}
    backoffs: dict[Ngram, float] = {}
    state = "start"  # start -> header -> section k ... -> end
    section, seen, section_line, line_no = 0, 0, 0, 0

    def close_section(where: str) -> None:
        if section and seen != declared[section]:
            raise LMError(f"{where}: \\{section}-grams: (line {section_line}) has {seen} entries, the header declares {declared[section]}")

    for line_no, raw in _text_lines(path):
        line = raw.strip()
        where = f"{path}:{line_no}"
        if not line:
            continue
        if state == "start":
            if line != "\\data\\":
                raise LMError(f"{where}: expected the \\data\\ header, found {line[:40]!r}")
            state = "header"
            continue
        if line == "\\end\\":
            close_section(where)
            if not declared:
                raise LMError(f"{where}: \\end\\ with no 'ngram N=COUNT' lines in the header")
            if section != len(declared):
                raise LMError(f"{where}: \\end\\ before the \\{section + 1}-grams: section the header declares")
            state = "end"
            break
        match = _SECTION_LINE.fullmatch(line)
        if match:
            close_section(where)
            k = int(match.group(1))
            if k != section + 1 or k not in declared:
                raise LMError(f"{where}: expected \\{section + 1}-grams: (declared orders 1..{len(declared)}), found {line!r}")
            section, seen, section_line, state = k, 0, line_no, "section"
            continue
        if state == "header":
            match = _COUNT_LINE.fullmatch(line)
            if not match or int(match.group(1)) != len(declared) + 1:
                raise LMError(f"{where}: expected 'ngram {len(declared) + 1}=COUNT', found {line[:40]!r}")
            declared[int(match.group(1))] = int(match.group(2))
            continue
        fields = line.split()
        n_fields = (section + 1, section + 2) if section < len(declared) else (section + 1,)
        if len(fields) not in n_fields:
            raise LMError(f"{where}: a {section}-gram line has {' or '.join(map(str, n_fields))} fields, found {len(fields)}")
        log_prob = _parse_number(fields[0], "log10 probability", where)
        if log_prob > 0:
            raise LMError(f"{where}: log10 probability {log_prob} is positive")
        ngram = tuple(fields[1 : section + 1])
        if ngram in log_probs:
            raise LMError(f"{where}: duplicate {section}-gram {' '.join(ngram)!r}")
        seen += 1
        if seen > declared[section]:
            raise LMError(f"{where}: more {section}-grams than the {declared[section]} the header declares")
        log_probs[ngram] = log_prob
        if len(fields) == section + 2:
            backoffs[ngram] = _parse_number(fields[-1], "log10 backoff", where)
    if state == "start":
        raise LMError(f"{path}:{max(line_no, 1)}: empty file, expected the \\data\\ header")
    if state != "end":
        raise LMError(f"{path}:{line_no}: file ends without \\end\\")
    for token in (BOS, EOS):
        if (token,) not in log_probs:
            raise LMError(f"{path}:{section_line if section == 1 else line_no}: no {token} in the 1-grams")
    log_probs.setdefault((UNK,), MISSING_UNK_LOG_PROB)
    return ArpaModel(log_probs, backoffs)


# ---------------------------------------------------------------------------------------------
# Lexicon: word -> spelling in the acoustic model's characters, ending with the word boundary.
# ---------------------------------------------------------------------------------------------


def spelling_letters(tokenizer: Tokenizer | None) -> frozenset[str]:
    """The characters words are spelled with: the tokenizer's vocabulary less the blank and space."""
    vocab = (tokenizer or Tokenizer()).vocab
    return frozenset(vocab) - {BLANK, SPACE}


def build_lexicon(words: Iterable[str], tokenizer: Tokenizer | None = None) -> dict[str, list[str]]:
    """Spell each distinct word in the tokenizer's characters, ``"enter" -> [e, n, t, e, r, |]``.

    Words with characters outside the tokenizer's vocabulary (spaces included) are skipped
    with a warning naming the word. Returns the words in sorted order.
    """
    letters = spelling_letters(tokenizer)
    lexicon = {}
    for word in sorted(set(words)):
        outside = sorted(set(word) - letters)
        if outside or not word:
            warnings.warn(f"lexicon: skipping word {word!r}: characters {outside} are not in the tokenizer's vocabulary", stacklevel=2)
            continue
        lexicon[word] = [*word, WORD_BOUNDARY]
    return lexicon


def write_lexicon(path: str | os.PathLike, words: Iterable[str], tokenizer: Tokenizer | None = None) -> dict[str, list[str]]:
    """Write the lexicon of ``words`` atomically, one ``word c h a r s |`` line each; returns it."""
    lexicon = build_lexicon(words, tokenizer)
    write_atomic(path, "".join(f"{word} {' '.join(spelling)}\n" for word, spelling in lexicon.items()))
    return lexicon


def read_lexicon(path: str | os.PathLike, tokenizer: Tokenizer | None = None) -> dict[str, list[str]]:
    """Read a lexicon file: ``{word: spelling tokens}``.

    Words spelt with tokens outside the tokenizer's vocabulary (other than ``|``), or not as
    letters then one ``|``, are skipped with a warning naming the file and line; a repeated
    word keeps its first spelling, with a warning. A line without a spelling, or one that is
    not UTF-8, raises :class:`LMError`.
    """
    path = Path(path)
    allowed = spelling_letters(tokenizer) | {WORD_BOUNDARY}
    lexicon: dict[str, list[str]] = {}
    for line_no, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        word, spelling = fields[0], fields[1:]
        if not spelling:
            raise LMError(f"{path}:{line_no}: {word!r} has no spelling (expected 'word c h a r s |')")
        outside = sorted(set(spelling) - allowed)
        if outside:
            warnings.warn(f"{path}:{line_no}: skipping {word!r}: tokens {outside} are not in the tokenizer's vocabulary", stacklevel=2)
        elif spelling[-1] != WORD_BOUNDARY or WORD_BOUNDARY in spelling[:-1] or len(spelling) < 2:
            warnings.warn(f"{path}:{line_no}: skipping {word!r}: a spelling is its letters, then one {WORD_BOUNDARY!r} at the end (got {' '.join(spelling)!r})", stacklevel=2)
        elif word in lexicon:
            warnings.warn(f"{path}:{line_no}: {word!r} repeats; keeping its first spelling", stacklevel=2)
        else:
            lexicon[word] = spelling
    return lexicon


# ---------------------------------------------------------------------------------------------
# Files in, files out (what `speechrnn lm build` calls).
# ---------------------------------------------------------------------------------------------


def _read_transcripts(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Normalised non-empty transcripts of text files, one a line; a JSON-lines manifest (its
    first line a JSON object with a "text") gives its "text" fields. AN4 ``.transcription``
    lines (``<s> WORDS </s> (utt-id)``) lose their tags and id: normalize_text strips that
    markup. A file that is not UTF-8, or no words in any file, raise ValueError naming the
    files; a file without words among others is skipped with a warning, and so are the
    characters the models cannot spell (digits, "&", "東"), named in one."""
    sentences, wordless, unspelled = [], [], Counter()
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        if _is_manifest(lines):
            lines = [_manifest_text(path, line_no, line) for line_no, line in enumerate(lines, 1) if line.strip()]
        for line in lines:
            unspelled.update(unspellable(line))
        found = [text for text in map(normalize_text, lines) if text]
        sentences += found
        wordless += [] if found else [str(path)]
    if not sentences:
        raise ValueError(f"{', '.join(wordless)}: no words to train a language model on (every line is empty once normalised)")
    for path in wordless:
        warnings.warn(f"{path}: no words in it (every line is empty once normalised)", stacklevel=2)
    if unspelled:
        shown = "".join(c for c, _ in unspelled.most_common(12))
        warnings.warn(f"{', '.join(map(str, paths))}: the transcripts hold characters the models cannot spell ({shown!r}): they are left out of the words (write numbers and symbols as words)", stacklevel=2)
    return sentences


def _is_manifest(lines: list[str]) -> bool:
    """Whether a file's first non-empty line is a manifest's JSON object with a "text"."""
    first = next((line for line in lines if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return False
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and "text" in row


def _manifest_text(path, line_no: int, line: str) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{line_no}: not a JSON object, in a file whose first line is a manifest's ({error})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise ValueError(f"{path}:{line_no}: no 'text' string, in a file whose first line is a manifest's")
    return row["text"]


def build_lm_files(
    text_paths: Sequence[str | os.PathLike],
    arpa_path: str | os.PathLike,
    lexicon_path: str | os.PathLike,
    order: int = 3,
    tokenizer: Tokenizer | None = None,
) -> dict:
    """Train an ARPA model and a lexicon on transcripts, one utterance a line.

    Args:
        text_paths: plain text files or AN4 ``.transcription`` files.
        arpa_path: where the ARPA model goes (written atomically).
        lexicon_path: where the lexicon goes (written atomically).
        order: the highest n-gram order.
        tokenizer: the acoustic model's vocabulary (default :class:`speechrnn.text.Tokenizer`).

    Returns:
        ``{"sentences": int, "words": int (running words), "vocabulary": int (distinct words),
        "ngrams": {order: count as in the ARPA header}}``.
    """
    split, log_probs, backoffs = _estimate(_read_transcripts(text_paths), order)
    words = [word for sentence in split for word in sentence]
    write_arpa(arpa_path, _format_arpa(log_probs, backoffs))
    write_lexicon(lexicon_path, words, tokenizer)
    return {
        "sentences": len(split),
        "words": len(words),
        "vocabulary": len(set(words)),
        "ngrams": dict(sorted(Counter(map(len, log_probs)).items())),
    }
