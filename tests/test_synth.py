"""Synthetic voices: espeak-ng's and flite's, as the recipe and the robustness bench use them."""
from __future__ import annotations

import random
import subprocess

import pytest
import soundfile as sf

from speechrnn.synth import FLITE_VOICES, engine_available, flite_available, letters_upper, random_engine_voice, random_flite_voice, random_voice, speak_flite, speak_with, to_ssml

needs_flite = pytest.mark.skipif(not flite_available(), reason="flite is not installed (bash scripts/setup.sh installs it as root)")


def test_spelled_letters_are_marked_for_each_engine():
    """AN4 spells words letter by letter; each engine is told to say a lone letter by its name
    ("a" as the letter, not the article)."""
    assert letters_upper("rubout a b three") == "rubout A B three"
    assert letters_upper("go") == "go"
    assert to_ssml("erase a b") == '<speak>erase <say-as interpret-as="characters">ab</say-as></speak>'


def test_random_flite_voices_come_from_the_voices_given():
    rng = random.Random(0)
    voices = [random_flite_voice(rng, ("awb", "rms")) for _ in range(40)]
    assert {v["voice"] for v in voices} == {"awb", "rms"}
    assert all(0.85 <= v["stretch"] <= 1.2 for v in voices)
    with pytest.raises(ValueError, match="unknown speech engine 'festival'"):
        engine_available("festival")


def test_an_engine_voice_is_drawn_as_its_own_function_draws_it():
    """The recipe's espeak-ng set keeps the draw it had before flite came (same rng use)."""
    assert random_engine_voice("espeak-ng", random.Random(3)) == random_voice(random.Random(3))
    assert random_engine_voice("flite", random.Random(3), ("awb", "rms")) == random_flite_voice(random.Random(3), ("awb", "rms"))
    with pytest.raises(ValueError, match="unknown speech engine 'festival'"):
        random_engine_voice("festival", random.Random(0))


@needs_flite
def test_flite_speaks_at_16_khz_and_stretches(tmp_path):
    quick = speak_with("flite", "enter five two", tmp_path / "quick.wav", {"voice": "rms", "stretch": 0.85})
    slow = speak_flite("enter five two", tmp_path / "slow.wav", voice="rms", stretch=1.2)
    assert sf.info(str(quick)).samplerate == 16000 and sf.info(str(quick)).channels == 1
    assert sf.info(str(slow)).duration > 1.2 * sf.info(str(quick)).duration  # 1.2 / 0.85 of it, less the silences
    for voice in FLITE_VOICES:  # each one the recipe may draw reads text
        assert sf.info(str(speak_flite("yes", tmp_path / f"{voice}.wav", voice=voice))).duration > 0.2
    with pytest.raises(ValueError, match="unknown flite voice 'kal'"):
        speak_flite("yes", tmp_path / "kal.wav", voice="kal")


@needs_flite
def test_flite_says_lone_letters_by_name(tmp_path):
    """speak_flite upper-cases a lone letter: "a b" sounds as "A B" does, not as flite reads
    "a b" as written (the article "a")."""
    said, _ = sf.read(str(speak_flite("a b", tmp_path / "said.wav", voice="rms")))
    named, _ = sf.read(str(speak_flite("A B", tmp_path / "named.wav", voice="rms")))
    subprocess.run(["flite", "-voice", "rms", "-t", "a b", "-o", str(tmp_path / "raw.wav")], check=True)
    raw, _ = sf.read(str(tmp_path / "raw.wav"))
    assert said.shape == named.shape and (said == named).all()
    assert said.shape != raw.shape or not (said == raw).all()
