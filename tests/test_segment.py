from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from speechrnn.audio import load_audio
from speechrnn.data import AugmentConfig, concatenation_groups
from speechrnn.model import load_model
from speechrnn.segment import SegmentConfig, split_at_pauses
from speechrnn.transcribe import decode, emissions, recognize, starts_in_speech

RATE = 16000


def burst(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Noise shaped like a syllable train: loud for `seconds`."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 4 * t) ** 2 * rng.standard_normal(len(t))).astype(np.float32)


def pause(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (1e-4 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def test_short_recordings_are_read_whole():
    rng = np.random.default_rng(0)
    wave = np.concatenate([burst(3, rng), pause(1, rng), burst(3, rng)])
    assert split_at_pauses(wave, SegmentConfig(max_seconds=8)) == [(0, len(wave))]
    assert split_at_pauses(np.zeros(0, np.float32), SegmentConfig()) == [(0, 0)]


def test_long_recordings_are_cut_in_their_longest_pauses_on_frame_boundaries():
    rng = np.random.default_rng(1)
    parts = [burst(4, rng), pause(0.4, rng), burst(4, rng), pause(1.5, rng), burst(4, rng), pause(0.8, rng), burst(4, rng)]
    wave = np.concatenate(parts)
    edges = np.cumsum([len(p) for p in parts])
    config = SegmentConfig(max_seconds=10, frame_samples=320)
    spans = split_at_pauses(wave, config)
    assert spans[0][0] == 0 and spans[-1][1] == len(wave)
    assert all(a[1] == b[0] for a, b in zip(spans[:-1], spans[1:]))  # contiguous: no sample dropped
    assert all(end - start <= config.max_seconds * RATE for start, end in spans)
    cuts = [start for start, _ in spans[1:]]
    assert all(c % 320 == 0 for c in cuts)
    # 17.5 s: one cut is enough, and it falls in the 1.5 s pause, not the shorter ones.
    assert len(cuts) == 1 and edges[2] < cuts[0] < edges[3]
    # With 5 s pieces every pause is used, and no cut falls inside a burst.
    cuts = [start for start, _ in split_at_pauses(wave, SegmentConfig(max_seconds=6, frame_samples=320))[1:]]
    assert len(cuts) == 3 and all(edges[i] <= c < edges[i + 1] for c, i in zip(cuts, (0, 2, 4)))


def test_without_pauses_a_long_recording_is_still_cut_to_size():
    wave = burst(25, np.random.default_rng(2))
    spans = split_at_pauses(wave, SegmentConfig(max_seconds=6))
    assert len(spans) >= 5 and all(0 < end - start <= 6 * RATE for start, end in spans)
    assert spans[-1][1] == len(wave)


def test_a_long_recording_reads_as_its_pieces_joined(speech_dir):
    """recognize() on a recording over the limit gives the pieces' transcripts and word times,
    shifted to the recording's clock, joined in order."""
    folder, phrases = speech_dir
    model = load_model("offline")
    gap = np.zeros(RATE, np.float32)
    wave = np.concatenate([part for name in ("enter", "spell", "erase", "yes") for part in (load_audio(folder / f"{name}.wav"), gap)])
    max_seconds = len(wave) / RATE / 3
    joined = recognize(model, [torch.from_numpy(wave)], max_segment=max_seconds)[0]
    spans = split_at_pauses(wave, SegmentConfig(max_seconds=max_seconds, frame_samples=320))
    assert len(spans) >= 3
    pieces = [torch.from_numpy(wave[a:b].copy()) for a, b in spans]
    alone = [None] * len(pieces)
    for i, log_probs in emissions(model, pieces):  # (each word's start in its speech, as recognize() places it)
        alone[i] = starts_in_speech(decode(model, log_probs), pieces[i].numpy(), 0.0, model.config.frame_shift, RATE)
    assert joined.text == " ".join(h.text for h in alone if h.text)
    expected = [(w.word, w.start + a / RATE, w.end + a / RATE) for (a, _), h in zip(spans, alone) for w in h.words]
    assert [w.word for w in joined.words] == [word for word, _, _ in expected]
    times = [t for w in joined.words for t in (w.start, w.end)]
    assert times == pytest.approx([t for _, start, end in expected for t in (start, end)], abs=2e-3)
    assert len(joined.frames) == len(joined.tokens) and joined.frames == sorted(joined.frames)
    assert joined.text == recognize(model, [torch.from_numpy(wave)], max_segment=max_seconds)[0].text
    # Read whole (no limit) it is one row through the model: the default for short files.
    assert recognize(model, [torch.from_numpy(wave)], max_segment=0)[0].words[0].start == pytest.approx(joined.words[0].start, abs=0.1)


def test_streaming_models_always_read_recordings_whole():
    from speechrnn.transcribe import segment_config

    assert segment_config(load_model("streaming")) is None
    assert segment_config(load_model("offline"), 0) is None
    assert segment_config(load_model("offline"), 12.5).max_seconds == 12.5


def test_joined_examples_use_every_utterance_once_per_epoch():
    config = AugmentConfig(concat_prob=0.5, concat_max=3)
    groups = concatenation_groups(100, config, random.Random(0))
    assert sorted(i for g in groups for i in g) == list(range(100))
    sizes = [len(g) for g in groups]
    assert max(sizes) <= 3 and 1 in sizes and 2 in sizes and 3 in sizes
    assert groups == concatenation_groups(100, config, random.Random(0))
    assert all(len(g) == 1 for g in concatenation_groups(50, AugmentConfig(concat_prob=0.0), random.Random(0)))
    with pytest.raises(ValueError):
        AugmentConfig(concat_prob=1.5)


def test_many_equal_pauses_give_balanced_pieces_all_cut_in_pauses():
    """Equal pauses tie: the one nearest a piece's middle wins, so an hour-long talk does not
    peel off one sentence at a time (a recursion that once ran out of stack)."""
    rng = np.random.default_rng(3)
    parts = [p for _ in range(300) for p in (burst(3, rng), pause(0.5, rng))]
    wave = np.concatenate(parts)
    spans = split_at_pauses(wave, SegmentConfig(max_seconds=12))
    lengths = [(end - start) / RATE for start, end in spans]
    assert max(lengths) <= 12 and min(lengths) >= 4 and len(spans) <= 150  # not 300 pieces of 3.5 s
    edges = np.cumsum([len(p) for p in parts])
    bursts = list(zip([0, *edges[1::2]], edges[0::2]))  # (start, end) of each burst
    assert not any(a < start < b for start, _ in spans[1:] for a, b in bursts)
