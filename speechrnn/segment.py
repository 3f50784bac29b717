"""Splitting long recordings at pauses, so a whole-input model reads them in utterance-sized pieces.

A bidirectional model trained on AN4's commands (a few seconds each) reads a recording of many
sentences worse than the same sentences one by one, and a single long row runs through the GRU
one step at a time where pieces of it run side by side in a batch. So a recording longer than
``max_seconds`` is cut at its longest pauses until every piece is at most that long; shorter
recordings are read whole. The pieces cover the recording end to end (no sample is dropped), and
each cut falls on an output-frame boundary, so frame numbers and times carry over exactly.

A pause is a run of 10 ms frames more than ``top_db`` below the recording's speech level (the
90th percentile of its frames' power, as ``features.speech_level_db`` measures it). That is
librosa's ``effects.split`` with a percentile reference, but its first call compiles code with
numba (20-50 s here), which a user's first transcription should not wait for; NumPy does it in
a few lines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import HOP_LENGTH, N_FFT


@dataclass(frozen=True)
class SegmentConfig:
    # Longer recordings are cut into pieces of at most this many seconds. Chosen on AN4 dev
    # (scripts/bench_longform.py --split dev --max-segment 8 12 20, the session-14 offline model):
    # 5 utterances a recording 17.16 / 17.16 / 19.19% WER, 20 a recording 17.83 / 16.93 / 17.83%.
    max_seconds: float = 12.0
    top_db: float = 30.0  # a frame this far below the recording's speech level is pause
    sample_rate: int = 16000
    frame_samples: int = HOP_LENGTH * 2  # cuts fall on multiples of this (the model's output step)

    def __post_init__(self):
        if self.max_seconds <= 0 or self.top_db <= 0 or self.frame_samples <= 0:
            raise ValueError("max_seconds, top_db and frame_samples must be positive")


def split_at_pauses(wave: np.ndarray, config: SegmentConfig) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges that cover ``wave`` in order, each at most
    ``config.max_seconds`` long (give or take one output frame), cut in the middle of the longest
    pauses; ``[(0, len(wave))]`` for a recording no longer than that."""
    n = len(wave)
    limit = int(config.max_seconds * config.sample_rate)
    if n <= limit:
        return [(0, n)]
    wave = np.asarray(wave, dtype=np.float32)
    gaps = _pauses(wave, config.top_db)
    cuts: list[int] = []

    def split(lo: int, hi: int) -> None:
        if hi - lo <= limit:
            return
        # The longest pause well inside the piece (each side keeps a second at least); where
        # there is none, the quietest 10 ms frame in its middle half.
        inside = [(length, middle) for middle, length in gaps if lo + config.sample_rate <= middle <= hi - config.sample_rate]
        if inside:
            cut = max(inside)[1]
        else:
            quarter = (hi - lo) // 4
            power = _frame_power(wave[lo + quarter : hi - quarter], HOP_LENGTH, HOP_LENGTH)
            cut = lo + quarter + int(np.argmin(power)) * HOP_LENGTH
        cut = cut // config.frame_samples * config.frame_samples
        if not lo < cut < hi:  # a piece too short to cut on a frame boundary
            return
        cuts.append(cut)
        split(lo, cut)
        split(cut, hi)

    split(0, n)
    bounds = [0, *sorted(cuts), n]
    return list(zip(bounds[:-1], bounds[1:]))


def _frame_power(wave: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Mean power of each whole frame of ``wave``."""
    if len(wave) < frame_length:
        return np.zeros(0, np.float32)
    return np.lib.stride_tricks.sliding_window_view(wave, frame_length)[::hop_length].astype(np.float64).__pow__(2).mean(axis=1)


def _pauses(wave: np.ndarray, top_db: float) -> list[tuple[int, int]]:
    """``(middle sample, length in samples)`` of each pause between two voiced frames (frames
    of the frontend's size and step, voiced when within ``top_db`` of the 90th-percentile frame
    power)."""
    power = _frame_power(wave, N_FFT, HOP_LENGTH)
    if len(power) == 0:
        return []
    voiced = np.flatnonzero(power > np.percentile(power, 90) * 10 ** (-top_db / 10))
    if len(voiced) == 0:
        return []
    # Between two voiced frames a and b (b > a + 1), samples from a's end to b's start are pause.
    before, after = voiced[:-1], voiced[1:]
    apart = after > before + 1
    ends, starts = before[apart] * HOP_LENGTH + N_FFT, after[apart] * HOP_LENGTH
    return [(int(e + s) // 2, int(s - e)) for e, s in zip(ends, starts) if s > e]
