"""The streaming benchmark's word-latency measurement (scripts/bench_streaming.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from speechrnn.audio import load_audio
from speechrnn.data import an4_utterances

_spec = importlib.util.spec_from_file_location("bench_streaming", Path(__file__).parent.parent / "scripts" / "bench_streaming.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def partial(*words):
    return SimpleNamespace(words=[SimpleNamespace(word=w) for w in words])


def test_latency_counts_a_word_once_every_word_before_it_is_right():
    final = partial("c", "i", "n")
    reference = [bench.Word("c", 0.30), bench.Word("i", 0.60), bench.Word("n", 0.90)]
    timeline = [  # (available, done, partial)
        (0.4, 0.41, partial("c")),
        (0.5, 0.51, partial("b", "i")),  # "i" shown, but after a wrong first word
        (0.7, 0.72, partial("c", "i")),
        (0.8, 0.81, partial("c", "i", "m")),
        (1.0, 1.02, partial("c", "i", "n")),
    ]
    latencies = bench.word_latencies(timeline, final, reference)
    assert [w.word for w in latencies] == ["c", "i", "n"]
    assert np.allclose([w.seconds for w in latencies], [0.11, 0.12, 0.12])
    assert [w.revised for w in latencies] == [False, False, True]  # "n" was shown as "m" first


def test_forced_alignment_word_ends(an4_root):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (bash scripts/setup.sh installs it)")
    for utterance in an4_utterances(an4_root, "test")[:3]:
        wave = load_audio(utterance.audio)
        words = bench.aligned_words(wave, utterance.text)
        assert [w.word for w in words] == utterance.text.split()
        ends = [w.end for w in words]
        assert ends == sorted(ends) and 0 < ends[0] and ends[-1] <= len(wave) / 16000
        # Trimming the quiet after a word only moves its end back (an infinite floor trims nothing).
        untrimmed = bench.aligned_words(wave, utterance.text, floor_db=np.inf)
        assert all(w.end <= u.end for w, u in zip(words, untrimmed))
        assert any(w.end < u.end for w, u in zip(words, untrimmed))
        assert bench.aligned_words(wave, utterance.text) == words  # the same alignment every time
    # Speech that is not the transcript's: the alignment fails and the utterance is left out.
    silence = np.zeros(16000, dtype=np.float32)
    assert bench.aligned_words(silence, "rubout g m e f three nine") == []


_positions_spec = importlib.util.spec_from_file_location("error_positions", Path(__file__).parent.parent / "scripts" / "error_positions.py")
positions = importlib.util.module_from_spec(_positions_spec)
_positions_spec.loader.exec_module(positions)


def test_errors_are_charged_to_the_reference_words_they_touch():
    assert positions.errors_by_position("may second nineteen", "may second nineteen") == [0, 0, 0]
    assert positions.errors_by_position("may second nineteen", "o second nineteen") == [1, 0, 0]
    assert positions.errors_by_position("may second nineteen", "second nineteen") == [1, 0, 0]
    # jiwer aligns this as "n" inserted before "may", then "six n" for "may second".
    assert positions.errors_by_position("may second nineteen", "n six n nineteen") == [2, 1, 0]
    assert positions.errors_by_position("enter two", "enter two ten") == [0, 1]  # an insertion after the end: the last word
    assert positions.errors_by_position("enter two", "") == [1, 1]
