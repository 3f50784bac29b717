"""Noise of other kinds than white: power-law (pink, brown) and babble, in training and in the
robustness bench."""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest
import torch

from conftest import load_script
from speechrnn.data import HUM_HARMONICS, NOISE_TYPES, AugmentConfig, babble, coloured_noise, mains_hum, perturb_wave, random_equalizer
from speechrnn.train import noise_fields, perturbed_batch

bench_robustness = load_script("scripts/bench_robustness.py", "bench_robustness")
recipe = load_script("recipes/an4/run.py", "an4_recipe")
manifest_recipe = load_script("recipes/manifest/run.py", "manifest_recipe")

RATE = 16000
NOISY = AugmentConfig(speeds=(1.0,), noise_prob=1.0, narrowband_prob=0.0, gain_db=(0.0, 0.0), snr_db=(10.0, 10.0))


def octave_powers(noise: torch.Tensor, lowest: float = 250.0, octaves: int = 4) -> list[float]:
    """The power of ``noise`` in each octave from ``lowest`` Hz up."""
    power = torch.fft.rfft(noise.double()).abs().pow(2)
    freqs = torch.fft.rfftfreq(noise.shape[0], d=1 / RATE)
    return [float(power[(freqs >= lowest * 2**k) & (freqs < lowest * 2 ** (k + 1))].sum()) for k in range(octaves)]


def tone(freq: float, seconds: float = 1.0) -> torch.Tensor:
    return 0.1 * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * RATE)) / RATE)


def test_power_law_noise_has_unit_power_and_its_slope_per_octave():
    # Power per octave: white doubles with each octave, pink stays, brown halves.
    for exponent, ratio in ((0.0, 2.0), (1.0, 1.0), (2.0, 0.5)):
        noise = coloured_noise(4 * RATE, exponent, torch.Generator().manual_seed(1))
        assert noise.shape == (4 * RATE,) and noise.dtype == torch.float32
        assert float(noise.pow(2).mean()) == pytest.approx(1.0, rel=0.02 if exponent else 0.05)
        powers = octave_powers(noise)
        for low, high in zip(powers, powers[1:]):
            assert high / low == pytest.approx(ratio, rel=0.15)
    again = coloured_noise(4 * RATE, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(again, coloured_noise(4 * RATE, 1.0, torch.Generator().manual_seed(1)))


def test_power_law_noise_is_flat_below_20_hz():
    # A power law down to the lowest bin would put most of a long clip's power below hearing.
    brown = coloured_noise(20 * RATE, 2.0, torch.Generator().manual_seed(2))
    below = octave_powers(brown, lowest=5.0, octaves=2)  # 5-10 Hz and 10-20 Hz: flat, so power doubles
    above = octave_powers(brown, lowest=20.0, octaves=2)  # 20-40 Hz and 40-80 Hz: halves
    assert below[1] / below[0] == pytest.approx(2.0, rel=0.3) and above[1] / above[0] == pytest.approx(0.5, rel=0.3)


def test_babble_is_made_of_the_other_recordings_only_at_unit_power():
    others = [tone(300.0), tone(1200.0, 0.5)]  # the second shorter than the babble: looped
    freqs = torch.fft.rfftfreq(3 * RATE, d=1 / RATE)
    heard = set()
    for seed in range(6):
        made = babble(others, 3 * RATE, random.Random(seed), talkers=(3, 3))
        assert made.shape == (3 * RATE,) and float(made.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)
        power = torch.fft.rfft(made.double()).abs().pow(2)
        shares = {f: float(power[(freqs - f).abs() < 20].sum() / power.sum()) for f in (300.0, 1200.0)}
        assert sum(shares.values()) > 0.95  # nothing but the talkers
        heard |= {f for f, share in shares.items() if share > 0.05}
    assert heard == {300.0, 1200.0}
    assert torch.equal(made, babble(others, 3 * RATE, random.Random(5), talkers=(3, 3)))


def test_white_alone_draws_what_it_always_drew_and_other_kinds_are_drawn_per_example():
    wave = 0.1 * torch.randn(RATE, generator=torch.Generator().manual_seed(0))
    plain_rng, white_rng = random.Random(5), random.Random(5)
    plain = perturb_wave(wave, NOISY, plain_rng)
    white = perturb_wave(wave, dataclasses.replace(NOISY, noise_types=("white",)), white_rng, [tone(500.0)])
    assert torch.equal(plain, white) and plain_rng.getstate() == white_rng.getstate()
    mixed = dataclasses.replace(NOISY, noise_types=("white", "brown"))
    slopes = set()
    for seed in range(12):
        noise = perturb_wave(wave, mixed, random.Random(seed)) - wave
        snr = 10 * torch.log10(wave.pow(2).mean() / noise.pow(2).mean())
        assert snr == pytest.approx(10.0, abs=0.3)
        powers = octave_powers(noise)
        slopes.add("brown" if powers[1] < powers[0] else "white")
    assert slopes == {"white", "brown"}


def test_hum_is_the_mains_frequency_and_its_harmonics_at_the_snr_drawn():
    freqs = torch.fft.rfftfreq(4 * RATE, d=1 / RATE)
    mains = set()
    for seed in range(8):
        hum = mains_hum(4 * RATE, random.Random(seed))
        assert float(hum.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)
        power = torch.fft.rfft(hum.double()).abs().pow(2)
        band = (freqs > 40) & (freqs < 70)
        fundamental = float(freqs[band][power[band].argmax()])
        assert 49.4 <= fundamental <= 50.6 or 59.4 <= fundamental <= 60.6
        mains.add(round(fundamental, -1))
        near_harmonics = sum(power[(freqs - k * fundamental).abs() < 3].sum() for k in range(1, HUM_HARMONICS + 1))
        assert near_harmonics / power.sum() > 0.95  # tones, nothing between them (but the leakage of tones off the FFT's bins)
    assert mains == {50.0, 60.0}
    wave = 0.1 * torch.randn(RATE, generator=torch.Generator().manual_seed(0))
    noise = perturb_wave(wave, dataclasses.replace(NOISY, noise_types=("hum",)), random.Random(1)) - wave
    assert 10 * torch.log10(wave.pow(2).mean() / noise.pow(2).mean()) == pytest.approx(10.0, abs=0.3)


def test_babble_in_a_batch_is_the_other_recordings_of_the_batch_and_white_without_them():
    config = dataclasses.replace(NOISY, noise_types=("babble",))
    waves = [tone(300.0), tone(2000.0)]
    padded, lens = perturbed_batch(waves, config, random.Random(0))
    assert lens.tolist() == [RATE, RATE]
    for row, own, other in ((0, 300.0, 2000.0), (1, 2000.0, 300.0)):
        noise = padded[row] - waves[row]
        power = torch.fft.rfft(noise.double()).abs().pow(2)
        freqs = torch.fft.rfftfreq(RATE, d=1 / RATE)
        assert power[(freqs - other).abs() < 20].sum() / power.sum() > 0.95  # its neighbour talks behind it
        assert power[(freqs - own).abs() < 20].sum() / power.sum() < 0.01  # never its own voice
    alone = perturb_wave(waves[0], config, random.Random(0)) - waves[0]
    powers = octave_powers(alone)
    assert all(high / low == pytest.approx(2.0, rel=0.3) for low, high in zip(powers, powers[1:]))  # white
    white = dataclasses.replace(NOISY, noise_types=("white",))  # no babble: each example drawn as alone
    batch_rng, alone_rng = random.Random(3), random.Random(3)
    padded, _ = perturbed_batch(waves, white, batch_rng)
    assert torch.equal(padded, torch.stack([perturb_wave(w, white, alone_rng) for w in waves]))
    assert batch_rng.getstate() == alone_rng.getstate()


def test_the_bench_counts_word_errors_by_kind():
    row = bench_robustness.scores(["a b c", "d e"], ["a x c y", ""])
    assert (row["substitutions"], row["deletions"], row["insertions"]) == (1, 2, 1)  # b->x, d and e dropped, y added
    assert row["wer"] == 80.0  # 4 errors in 5 words


def test_unknown_noise_kinds_are_refused_by_the_config_and_both_recipes(capsys):
    assert NOISE_TYPES == ("white", "pink", "brown", "babble", "hum")
    for bad in ((), ("white", "purple")):
        with pytest.raises(ValueError, match="noise_types"):
            AugmentConfig(noise_types=bad)
    assert recipe.robust_augment(recipe.parse_args([])).noise_types == ("white",)
    robust = recipe.robust_augment(recipe.parse_args(["--noise-types", "pink", "babble"]))
    assert robust.noise_types == ("pink", "babble") and recipe.clean_augment(robust).noise_prob == 0.0
    with pytest.raises(SystemExit):
        recipe.parse_args(["--noise-types", "purple"])
    assert "invalid choice: 'purple'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        manifest_recipe.main(["--train", "missing.jsonl", "--dev", "missing.jsonl", "--exp", "x", "--noise-types", "purple"])
    assert "invalid choice: 'purple'" in capsys.readouterr().err


def test_both_recipes_read_the_shared_noise_options_alike():
    argv = ["--noise-prob", "0.5", "--snr-db", "5", "40", "--noise-types", "pink", "babble", "--narrowband-prob", "0.2", "--vtlp", "0.9", "1.1", "--eq-prob", "0.3", "--eq-db", "9", "--lead-in-prob", "0.3", "--lead-in-max", "2"]
    an4 = noise_fields(recipe.parse_args(argv))
    manifest = noise_fields(manifest_recipe.build_parser().parse_args(["--train", "t", "--dev", "d", "--exp", "x", *argv]))
    assert an4 == manifest == {
        "noise_prob": 0.5, "snr_db": (5.0, 40.0), "noise_types": ("pink", "babble"), "narrowband_prob": 0.2, "vtlp": (0.9, 1.1), "eq_prob": 0.3, "eq_db": 9.0, "lead_in_prob": 0.3, "lead_in_max": 2.0,
    }
    robust = recipe.robust_augment(recipe.parse_args(argv))
    assert {field: getattr(robust, field) for field in an4} == an4
    assert recipe.clean_augment(robust).eq_prob == 0.0  # microphones are the robust stage's


def test_a_random_microphone_colours_speech_within_its_gains():
    impulse = torch.zeros(RATE)
    impulse[0] = 1.0
    shapes = []
    for seed in range(20):
        response = random_equalizer(impulse, random.Random(seed), 12.0)
        gains = 20 * torch.log10(torch.fft.rfft(response.double()).abs()[100:6001])  # 1 Hz bins
        # 2-4 filters of at most 12 dB each, overlapping: never more than 48 dB, and each one something.
        assert float(gains.abs().max()) <= 48.0 and float(gains.abs().max()) > 0.5
        shapes.append(gains)
    assert min(float((a - b).abs().max()) for a, b in zip(shapes, shapes[1:])) > 1.0  # each draw another microphone
    assert torch.equal(random_equalizer(impulse, random.Random(3), 12.0), random_equalizer(impulse, random.Random(3), 12.0))
    flat = random_equalizer(impulse, random.Random(3), 0.0)
    assert torch.allclose(flat, impulse, atol=1e-6)  # no gain: no colour
    # In training: heard through one with eq_prob 1, through none with 0.
    wave = 0.1 * torch.randn(RATE, generator=torch.Generator().manual_seed(0))
    plain = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0))
    coloured = perturb_wave(wave, dataclasses.replace(plain, eq_prob=1.0), random.Random(0))
    assert coloured.shape == wave.shape and not torch.allclose(coloured, wave, atol=1e-3)
    assert torch.equal(perturb_wave(wave, plain, random.Random(0)), wave)
    with pytest.raises(ValueError, match="eq_prob"):
        AugmentConfig(eq_prob=1.5)


def test_a_lead_in_puts_up_to_its_longest_of_faint_noise_before_the_speech():
    from speechrnn.data import LEAD_IN_DB

    wave = 0.1 * torch.randn(RATE, generator=torch.Generator().manual_seed(0))
    plain = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0))
    leads = []
    for seed in range(20):
        led = perturb_wave(wave, dataclasses.replace(plain, lead_in_prob=1.0, lead_in_max=1.5), random.Random(seed))
        lead = led.shape[0] - wave.shape[0]
        assert 0 <= lead <= 1.5 * RATE and torch.equal(led[lead:], wave)  # the speech itself unchanged
        if lead >= RATE // 10:
            rms_db = 20 * math.log10(float(led[:lead].pow(2).mean().sqrt()))
            assert LEAD_IN_DB[0] - 1 <= rms_db <= LEAD_IN_DB[1] + 1
        leads.append(lead)
    assert len(set(leads)) == len(leads) and max(leads) > 0.75 * RATE  # drawn anew each time, spread over the range
    assert AugmentConfig().lead_in_prob == 0.0 and torch.equal(perturb_wave(wave, plain, random.Random(5)), wave)  # off by default
    with pytest.raises(ValueError, match="lead_in_prob"):
        AugmentConfig(lead_in_prob=1.5)


def test_the_robustness_bench_hears_each_utterance_through_another_microphone_the_same_way_each_run():
    waves = [tone(500.0), tone(2000.0)]
    wanted = lambda name: name == "microphones"
    first = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted)["microphones"]
    again = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted)["microphones"]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.allclose(heard, wave, atol=1e-3) for heard, wave in zip(first, waves))


def test_the_robustness_bench_adds_each_kind_of_noise_at_10_db_the_same_way_each_run():
    waves = [tone(440.0), tone(880.0, 0.5)]
    talkers = [tone(3000.0, 0.7)]
    wanted = lambda name: name.startswith(("noise", "pink", "brown", "babble"))  # noqa: E731
    first = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted, talkers=lambda: talkers)
    again = bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted, talkers=lambda: talkers)
    assert list(first) == list(bench_robustness.NOISE_KINDS)
    for name, made in first.items():
        for noisy, wave, repeat in zip(made, waves, again[name]):
            assert torch.equal(noisy, repeat)
            snr = 10 * torch.log10(wave.pow(2).mean() / (noisy - wave).pow(2).mean())
            assert snr == pytest.approx(10.0, abs=0.2 if name != "noise 10 dB" else 0.5)
    babbled = first["babble 10 dB"][0] - waves[0]
    power = torch.fft.rfft(babbled.double()).abs().pow(2)
    freqs = torch.fft.rfftfreq(babbled.shape[0], d=1 / RATE)
    assert power[(freqs - 3000.0).abs() < 20].sum() / power.sum() > 0.95
    # Without talkers there is no babble condition (and the others are made as before).
    assert "babble 10 dB" not in bench_robustness.conditions(waves, ["a", "b"], Path("unused"), wanted)
