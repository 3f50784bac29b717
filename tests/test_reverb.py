"""Simulated rooms (speechrnn.reverb): their impulse responses, reverberant speech, the robust
stage's reverb augmentation and the robustness bench's reverberant conditions (and its
flite voices)."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from conftest import load_script
from speechrnn.data import AugmentConfig, perturb_wave
from speechrnn.reverb import decay_time, response_bank, reverberate, room_impulse_response
from speechrnn.synth import FLITE_VOICES, flite_available

bench_robustness = load_script("scripts/bench_robustness.py", "bench_robustness")


def test_a_room_starts_at_its_direct_path_and_decays_as_slowly_as_its_reverberation_time():
    assert torch.equal(room_impulse_response(random.Random(3)), room_impulse_response(random.Random(3)))
    rng = random.Random(0)
    dry = [room_impulse_response(rng, (0.2, 0.25)) for _ in range(4)]
    bare = [room_impulse_response(rng, (0.8, 0.9)) for _ in range(4)]
    for response in dry + bare:
        assert response[0] == 1.0 and response.abs().max() == 1.0
    # The reflections stop at order MAX_ORDER, so a response decays faster than its room would:
    # only the order and a loose scale are checked.
    dry_s, bare_s = sum(map(decay_time, dry)) / 4, sum(map(decay_time, bare)) / 4
    assert 2 * dry_s < bare_s < 0.9
    exponential = torch.exp(-torch.arange(16000) / 16000 * 6 * math.log(10))  # -120 dB a second: 60 dB in 0.5 s
    assert decay_time(exponential) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="reverberation time too short"):
        room_impulse_response(random.Random(0), (0.01, 0.02))


def test_reverberant_speech_keeps_the_length_and_level_and_rings_on():
    wave = torch.zeros(16000)
    wave[[1000, 8000]] = 0.5
    assert torch.allclose(reverberate(wave, torch.tensor([1.0])), wave, atol=1e-6)  # FFT rounding
    wet = reverberate(wave, room_impulse_response(random.Random(1), (0.5, 0.5)))
    assert wet.shape == wave.shape
    assert wet.pow(2).mean().sqrt() == pytest.approx(float(wave.pow(2).mean().sqrt()), rel=1e-4)
    tail = wet[1200:8000].pow(2).sum() / wet.pow(2).sum()  # after the first click's direct sound
    assert tail > 0.05
    assert wet[:1000].abs().max() < 1e-5  # nothing before the first click: the response starts at its direct path


def test_the_robust_stage_hears_utterances_through_rooms_of_its_bank():
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    plain = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0))
    assert torch.equal(perturb_wave(wave, plain, random.Random(0)), wave)
    reverb = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0), reverb_prob=1.0, rt60=(0.3, 0.4))
    rooms = response_bank(reverb.rt60)
    assert len(rooms) == 256 and response_bank((0.3, 0.4)) is rooms  # made once per process
    out = perturb_wave(wave, reverb, random.Random(0))
    assert any(torch.allclose(out, reverberate(wave, room).clamp(-1, 1)) for room in rooms)
    assert not torch.allclose(out, wave, atol=1e-3)
    with pytest.raises(ValueError, match="reverb_prob"):
        AugmentConfig(reverb_prob=1.5)
    with pytest.raises(ValueError, match="rt60"):
        AugmentConfig(rt60=(0.8, 0.2))


def test_the_robustness_bench_reverberates_every_utterance_the_same_way_each_run(tone):
    waves = [torch.from_numpy(tone), torch.from_numpy(tone[:8000])]
    wanted = lambda name: name.startswith("reverb")
    decays: dict[str, float] = {}
    first = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted, decays)
    again = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted)
    assert list(first) == list(decays) == ["reverb (RT60 0.3-0.5 s)", "reverb (RT60 0.6-0.9 s)"]
    assert 0 < decays["reverb (RT60 0.3-0.5 s)"] < decays["reverb (RT60 0.6-0.9 s)"] < 0.9
    for name, made in first.items():
        assert [w.shape for w in made] == [w.shape for w in waves]
        assert all(torch.equal(a, b) for a, b in zip(made, again[name]))
        assert all(not torch.allclose(a, w, atol=1e-3) for a, w in zip(made, waves))


@pytest.mark.skipif(not flite_available(), reason="flite is not installed (bash scripts/setup.sh installs it as root)")
def test_the_robustness_bench_says_the_texts_in_flite_voices_and_scores_each_voice(tmp_path):
    texts = ["enter one two", "yes", "rubout a b", "stop"]
    voices: list[str] = []
    made = bench_robustness.conditions([torch.zeros(16000)] * 4, texts, tmp_path, lambda name: name == "flite", flite_voices=voices)
    assert list(made) == ["flite"] and len(made["flite"]) == 4 and all(w.abs().max() > 0.01 for w in made["flite"])
    assert len(voices) == 4 and set(voices) <= set(FLITE_VOICES)
    by_voice = bench_robustness.wer_by_voice(["a b", "c d", "e f"], ["a b", "c x", "x x"], ["awb", "slt", "slt"])
    assert by_voice == {"awb": 0.0, "slt": 75.0}  # each voice's own corpus WER: 3 of slt's 4 words wrong
