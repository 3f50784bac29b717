"""CTC decoding: per-frame log-probabilities -> text with word times and confidences.

Shapes: ``B`` batch, ``U`` output frames, ``V`` vocabulary size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .text import Tokenizer


class WordTiming(NamedTuple):
    word: str
    start: float  # seconds from the start of the audio to the word's first character frame
    end: float  # seconds to the end of the word's last character frame
    confidence: float  # mean posterior probability of the word's characters, in [0, 1]


class Hypothesis(NamedTuple):
    text: str  # the transcript, normalised (lower case, single spaces)
    tokens: list[int]  # collapsed token indices, blanks removed
    frames: list[int]  # output frame of each token's first emission
    score: float  # sum of the best path's log-probabilities
    words: list[WordTiming]


def greedy_decode(
    log_probs: torch.Tensor,
    out_lens: torch.Tensor,
    tokenizer: Tokenizer,
    frame_shift: float,
    time_offset: float = 0.0,
) -> list[Hypothesis]:
    """Best-path CTC decoding of a batch.

    Args:
        log_probs: ``(B, U, V)`` CTC log-probabilities.
        out_lens: ``(B,)`` valid frames per row.
        tokenizer: the model's vocabulary.
        frame_shift: seconds per output frame.
        time_offset: seconds added to every timestamp.

    Returns:
        One :class:`Hypothesis` per row.
    """
    if log_probs.dim() != 3 or log_probs.shape[-1] != len(tokenizer):
        raise ValueError(f"log_probs must be (B, U, {len(tokenizer)}), got {tuple(log_probs.shape)}")
    if out_lens.shape != log_probs.shape[:1]:
        raise ValueError(f"out_lens must be ({log_probs.shape[0]},), got {tuple(out_lens.shape)}")
    hypotheses = []
    for row in range(log_probs.shape[0]):
        decoder = GreedyDecoder(tokenizer, frame_shift, time_offset)
        decoder.step(log_probs[row, : int(out_lens[row])])
        hypotheses.append(decoder.hypothesis())
    return hypotheses


# Written here: torchaudio's CTC decoders are batch-only beam searches (flashlight-text); best-path
# decoding that can be stepped chunk by chunk and keeps word times is a few lines of its own.
class GreedyDecoder:
    """Online best-path CTC decoding: feed frames chunk by chunk, read the hypothesis any time.

    The work per chunk is proportional to the chunk, not to the audio so far, and feeding
    a sequence in any split gives the same hypothesis as feeding it whole.

    Example:
        >>> decoder = GreedyDecoder(Tokenizer(), frame_shift=0.03)
        >>> decoder.step(torch.zeros(0, 29))
        >>> decoder.hypothesis().text
        ''
    """

    def __init__(self, tokenizer: Tokenizer, frame_shift: float, time_offset: float = 0.0):
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift
        self.time_offset = time_offset
        self.n_frames = 0  # frames decoded so far
        self.last_emission = -1  # frame of the last non-blank token (-1: none yet)
        self.tokens: list[int] = []
        self.frames: list[int] = []
        self.score = 0.0
        self._previous = tokenizer.blank
        self._words: list[WordTiming] = []
        self._chars: list[str] = []
        self._char_probs: list[float] = []
        self._word_first = self._word_last = 0

    def step(self, log_probs: torch.Tensor) -> None:
        """Decode ``(U, V)`` further frames."""
        if log_probs.dim() != 2 or log_probs.shape[-1] != len(self.tokenizer):
            raise ValueError(f"log_probs must be (U, {len(self.tokenizer)}), got {tuple(log_probs.shape)}")
        best_log_probs, best = log_probs.max(dim=-1)
        self.score += float(best_log_probs.sum())
        blank = self.tokenizer.blank
        for offset, (token, prob) in enumerate(zip(best.tolist(), best_log_probs.exp().tolist())):
            frame = self.n_frames + offset
            if token != blank:
                if token != self._previous:
                    self._emit(token, frame, prob)
                elif self._char_probs and token != self.tokenizer.space:
                    self._char_probs[-1] = max(self._char_probs[-1], prob)
                self.last_emission = frame
            self._previous = token
        self.n_frames += log_probs.shape[0]

    def _emit(self, token: int, frame: int, prob: float) -> None:
        self.tokens.append(token)
        self.frames.append(frame)
        if token == self.tokenizer.space:
            self._close_word()
            return
        if not self._chars:
            self._word_first = frame
        self._chars.append(self.tokenizer.vocab[token])
        self._char_probs.append(prob)
        self._word_last = frame

    def _current_word(self) -> WordTiming | None:
        if not self._chars:
            return None
        return WordTiming(
            word="".join(self._chars),
            start=round(self.time_offset + self._word_first * self.frame_shift, 3),
            end=round(self.time_offset + (self._word_last + 1) * self.frame_shift, 3),
            confidence=round(sum(self._char_probs) / len(self._char_probs), 4),
        )

    def _close_word(self) -> None:
        word = self._current_word()
        if word is not None:
            self._words.append(word)
        self._chars, self._char_probs = [], []

    def hypothesis(self) -> Hypothesis:
        """The best path so far (a word still being spelled is included)."""
        current = self._current_word()
        words = self._words + [current] if current else list(self._words)
        return Hypothesis(
            text=" ".join(w.word for w in words),
            tokens=list(self.tokens),
            frames=list(self.frames),
            score=self.score,
            words=words,
        )
