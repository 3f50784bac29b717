"""CTC decoding: per-frame log-probabilities -> text with word times and confidences.

Shapes: ``B`` batch, ``U`` output frames, ``V`` vocabulary size.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

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
    best_log_probs, best = log_probs.max(dim=-1)
    hypotheses = []
    for row in range(log_probs.shape[0]):
        n = int(out_lens[row])
        path = best[row, :n].tolist()
        path_scores = best_log_probs[row, :n]
        tokens, frames, probs = collapse_path(path, path_scores.exp().tolist(), tokenizer.blank)
        hypotheses.append(
            Hypothesis(
                text=tokenizer.decode(tokens),
                tokens=tokens,
                frames=frames,
                score=float(path_scores.sum()),
                words=word_timings(tokens, frames, probs, tokenizer, frame_shift, time_offset),
            )
        )
    return hypotheses


def collapse_path(path: Sequence[int], probs: Sequence[float], blank: int) -> tuple[list[int], list[int], list[float]]:
    """Merge repeats and drop blanks of a best path.

    Returns tokens, the frame where each token starts, and each token's peak probability.
    """
    tokens, frames, peaks = [], [], []
    previous = blank
    for t, (token, prob) in enumerate(zip(path, probs)):
        if token != blank:
            if token != previous:
                tokens.append(token)
                frames.append(t)
                peaks.append(prob)
            else:
                peaks[-1] = max(peaks[-1], prob)
        previous = token
    return tokens, frames, peaks


def word_timings(
    tokens: Sequence[int],
    frames: Sequence[int],
    probs: Sequence[float],
    tokenizer: Tokenizer,
    frame_shift: float,
    time_offset: float = 0.0,
) -> list[WordTiming]:
    """Group characters into words at the space token, with times in seconds."""
    words: list[WordTiming] = []
    chars: list[str] = []
    first = last = 0
    char_probs: list[float] = []

    def close():
        if chars:
            words.append(
                WordTiming(
                    word="".join(chars),
                    start=round(time_offset + first * frame_shift, 3),
                    end=round(time_offset + (last + 1) * frame_shift, 3),
                    confidence=round(sum(char_probs) / len(char_probs), 4),
                )
            )

    for token, frame, prob in zip(tokens, frames, probs):
        if token == tokenizer.space:
            close()
            chars, char_probs = [], []
            continue
        if not chars:
            first = frame
        chars.append(tokenizer.vocab[token])
        char_probs.append(prob)
        last = frame
    close()
    return words
