"""Character vocabulary, transcript normalisation, tokens <-> text."""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

BLANK = "<blank>"
SPACE = " "
# Index 0 is the CTC blank; the rest are the characters the models spell with.
VOCAB: tuple[str, ...] = (BLANK, SPACE, "'") + tuple("abcdefghijklmnopqrstuvwxyz")

_MARKUP = re.compile(r"</?s>|\([^)]*\)|\[[^\]]*\]|<[^>]*>")
_NOT_IN_VOCAB = re.compile(r"[^a-z' ]+")
# Typographic apostrophes are apostrophes; dashes, slashes, an ellipsis and a zero-width space
# separate words ("well—that", "and/or", "wait…what"), so they become spaces before other
# punctuation is dropped; zero-width joiners and a byte-order mark are dropped.
_SPELLING = str.maketrans({
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2014": " ", "\u2013": " ", "/": " ", "-": " ",
    "\u2026": " ", "\u200b": " ", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
})
# Latin letters that are not a letter plus accents, so that stripping accents alone would drop
# them ("straße" -> "strae"): their usual spelling in a-z.
_LATIN_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l",
    "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ı": "i",
})
_SPACES = re.compile(r"\s+")
# An apostrophe that does not join two letters is a quotation mark ('yes', the students'),
# not part of the word's spelling.
_QUOTE = re.compile(r"(?<![a-z])'+|'+(?![a-z])")
# Characters read aloud as words: a transcript that holds them cannot be spelled as it is said.
_SPOKEN_SYMBOLS = set("&%$@+=#£€§")


def fold_to_ascii(text: str) -> str:
    """Lower-case ASCII: accents stripped, ß, æ, œ, ø and the like spelled in a-z, other
    non-ASCII characters dropped.

    >>> fold_to_ascii("Café Straße")
    'cafe strasse'
    """
    text = unicodedata.normalize("NFKD", text.translate(_LATIN_LETTERS))
    return text.encode("ascii", "ignore").decode("ascii").lower()


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, sentence/utterance markup (``<s>``, ``(an251-fash-b)``),
    punctuation and quotation marks, keeping letters, apostrophes within words and single
    spaces (any whitespace separates words).

    >>> normalize_text("<s> RUBOUT G M E F THREE </s> (an406-fcaw-b)")
    'rubout g m e f three'
    >>> normalize_text("It’s well—that, and/or café")
    "it's well that and or cafe"
    >>> normalize_text("He said ‘yes’.\tGo")
    'he said yes go'
    """
    text = _MARKUP.sub(" ", text).translate(_SPELLING)
    text = _SPACES.sub(" ", fold_to_ascii(text))
    text = _QUOTE.sub(" ", _NOT_IN_VOCAB.sub("", text))
    return _SPACES.sub(" ", text).strip()


def unspellable(text: str) -> list[str]:
    """The characters of a transcript that :func:`normalize_text` drops although they are
    spoken: digits, symbols read as words ("&", "%", "$") and letters that are not a-z once
    accents are stripped ("東"; "é" and "ß" are spellable). Sorted, each once.

    >>> unspellable("Café at 5 & straße 東京")
    ['&', '5', '京', '東']
    """
    found = set()
    for char in unicodedata.normalize("NFKD", _MARKUP.sub(" ", text).translate(_LATIN_LETTERS)):
        if unicodedata.combining(char):
            continue
        if char.isdigit() or char in _SPOKEN_SYMBOLS or (char.isalpha() and not ("a" <= char.lower() <= "z")):
            found.add(char)
    return sorted(found)


class Tokenizer:
    """Maps normalised text to vocabulary indices and back."""

    def __init__(self, vocab: Sequence[str] = VOCAB):
        if not vocab or vocab[0] != BLANK:
            raise ValueError(f"vocabulary must start with the blank {BLANK!r}, got {list(vocab)[:3]}")
        self.vocab = tuple(vocab)
        self.index = {symbol: i for i, symbol in enumerate(self.vocab)}
        self.blank = 0
        self.space = self.index.get(SPACE)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Normalise ``text`` and return its token indices (no blanks)."""
        return [self.index[c] for c in normalize_text(text) if c in self.index]

    def decode(self, tokens: Sequence[int]) -> str:
        """Token indices (already collapsed, blanks allowed) -> text."""
        text = "".join(self.vocab[t] for t in tokens if t != self.blank)
        return _SPACES.sub(" ", text).strip()
