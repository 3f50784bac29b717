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
# Typographic apostrophes are apostrophes; dashes and slashes separate words ("well—that",
# "and/or"), so they become spaces before other punctuation is dropped.
_SPELLING = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2014": " ", "\u2013": " ", "/": " ", "-": " "})
_SPACES = re.compile(r"\s+")


def fold_to_ascii(text: str) -> str:
    """Lower-case ASCII: accents stripped, other non-ASCII characters dropped.

    >>> fold_to_ascii("Café")
    'cafe'
    """
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, sentence/utterance markup (``<s>``, ``(an251-fash-b)``)
    and punctuation, keeping letters, apostrophes and single spaces.

    >>> normalize_text("<s> RUBOUT G M E F THREE </s> (an406-fcaw-b)")
    'rubout g m e f three'
    >>> normalize_text("It’s well—that, and/or café")
    "it's well that and or cafe"
    """
    text = _MARKUP.sub(" ", text).translate(_SPELLING)
    text = _NOT_IN_VOCAB.sub("", fold_to_ascii(text))
    return _SPACES.sub(" ", text).strip()


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
