"""Splitting long recordings at pauses, so a whole-input model reads them in utterance-sized pieces.

A bidirectional model trained on AN4's commands (a few seconds each) reads a recording of many
sentences worse than the same sentences one by one, and a single long row runs through the GRU
one step at a time where pieces of it run side by side in a batch. So a recording longer than
``max_seconds`` is cut at its longest pauses until every piece is at most that long; shorter
recordings are read whole. The pieces cover the recording end to end (no sample is dropped), and
each cut falls on an output-frame boundary, so frame numbers and times carry over exactly.

A pause is a run of 10 ms blocks of samples more than ``top_db`` below the recording's speech
level (the 90th percentile of the blocks' power). That is close to librosa's ``effects.split``
with a percentile reference, but its first call compiles code with numba (54 s here, beside a
training run), which a user's first transcription should not wait for; NumPy does it in a few
lines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import HOP_LENGTH, SAMPLE_RATE


# The shortest piece limit: a cut keeps a second of audio on each side of it.
MIN_SEGMENT_SECONDS = 2.0


@dataclass(frozen=True)
class SegmentConfig:
    # Longer recordings are cut into pieces of at most this many seconds. Chosen on AN4 dev
    # (scripts/bench_longform.py --split dev --max-segment 8 12 20, the session-14 offline model):
    # 5 utterances a recording 17.61 / 17.61 / 19.41% WER, 20 a recording 17.38 / 16.93 / 16.70%.
    max_seconds: float = 12.0
    top_db: float = 30.0  # a 10 ms block this far below the recording's speech level is pause
    sample_rate: int = SAMPLE_RATE
    frame_samples: int = HOP_LENGTH * 2  # cuts fall on multiples of this (the model's output step)

    def __post_init__(self):
        if not MIN_SEGMENT_SECONDS <= self.max_seconds < float("inf") or not self.top_db > 0 or self.frame_samples <= 0:
            raise ValueError(f"max_seconds must be finite and at least {MIN_SEGMENT_SECONDS:g}, top_db and frame_samples positive; got {self.max_seconds}, {self.top_db}, {self.frame_samples}")


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
    pending = [(0, n)]
    while pending:
        lo, hi = pending.pop()
        if hi - lo <= limit:
            continue
        # The longest pause well inside the piece (each side keeps a second at least; pauses
        # within 50 ms of each other count as equal, and the one nearer the middle wins);
        # where there is none, the quietest 10 ms block in the piece's middle half.
        inside = [
            (length // (5 * HOP_LENGTH), -abs(middle - (lo + hi) // 2), middle)
            for middle, length in gaps
            if lo + config.sample_rate <= middle <= hi - config.sample_rate
        ]
        if inside:
            cut = max(inside)[2]
        else:
            quarter = (hi - lo) // 4
            cut = lo + quarter + int(np.argmin(_block_power(wave[lo + quarter : hi - quarter]))) * HOP_LENGTH
        cut = cut // config.frame_samples * config.frame_samples
        if lo < cut < hi:  # else a piece too short to cut on a frame boundary
            cuts.append(cut)
            pending += [(lo, cut), (cut, hi)]
    bounds = [0, *sorted(cuts), n]
    return list(zip(bounds[:-1], bounds[1:]))


def _block_power(wave: np.ndarray) -> np.ndarray:
    """Mean power of each whole 10 ms block of ``wave`` (``HOP_LENGTH`` samples), without a
    copy of the samples (an hour of audio is 58 M of them)."""
    n_blocks = len(wave) // HOP_LENGTH
    blocks = wave[: n_blocks * HOP_LENGTH].reshape(n_blocks, HOP_LENGTH)
    return np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / HOP_LENGTH


def voiced_blocks(wave: np.ndarray, top_db: float = SegmentConfig.top_db) -> np.ndarray:
    """Whether each whole 10 ms block of ``wave`` is voiced: within ``top_db`` of the
    90th-percentile block power (the recording's speech level)."""
    power = _block_power(np.asarray(wave, dtype=np.float32))
    if len(power) == 0:
        return np.zeros(0, dtype=bool)
    return power > np.percentile(power, 90) * 10 ** (-top_db / 10)


def _pauses(wave: np.ndarray, top_db: float) -> list[tuple[int, int]]:
    """``(middle sample, length in samples)`` of each pause between two voiced 10 ms blocks
    (voiced: within ``top_db`` of the 90th-percentile block power)."""
    voiced = np.flatnonzero(voiced_blocks(wave, top_db))
    if len(voiced) == 0:
        return []
    # Between voiced blocks a and b > a + 1, the blocks a + 1 .. b - 1 are pause.
    before, after = voiced[:-1], voiced[1:]
    apart = after > before + 1
    ends, starts = (before[apart] + 1) * HOP_LENGTH, after[apart] * HOP_LENGTH
    return [(int(e + s) // 2, int(s - e)) for e, s in zip(ends, starts)]
