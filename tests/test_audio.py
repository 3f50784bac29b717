from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import random

from conftest import random_chunks, write_wav
from speechrnn.audio import AudioError, DCBlocker, HumFilter, InputFilter, hum_level, hum_warning, load_audio, prepare_samples, remove_dc, resample, to_float32


def test_formats_give_the_same_samples(tmp_path, tone):
    wav = write_wav(tmp_path / "a.wav", tone, 16000)
    flac = write_wav(tmp_path / "a.flac", tone, 16000)
    reference = load_audio(wav)
    assert reference.dtype == np.float32 and reference.shape == (16000,)
    np.testing.assert_allclose(load_audio(flac), reference, atol=1.01 / 32768)  # 16-bit rounding
    ogg = write_wav(tmp_path / "a.ogg", tone, 16000, subtype="VORBIS")
    assert np.corrcoef(load_audio(ogg), reference)[0, 1] > 0.95  # lossy


def test_stereo_8k_is_downmixed_and_resampled(tmp_path, tone):
    at_8k = resample(tone, 16000, 8000)
    stereo = np.stack([at_8k, at_8k], axis=1)
    samples = load_audio(write_wav(tmp_path / "s.wav", stereo, 8000))
    assert samples.shape == (16000,)
    # A band-limited 440 Hz tone survives the round trip through 8 kHz.
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) - 440) <= 1


@pytest.mark.parametrize("rate", [11127, 44101])
def test_a_rate_sharing_no_factor_with_16k_resamples_in_little_memory(tmp_path, rate):
    # torchaudio's kernel for 11127 -> 16000 Hz would take gigabytes; soxr takes it instead.
    t = np.arange(rate) / rate
    samples = load_audio(write_wav(tmp_path / "odd.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate))
    assert samples.shape == (16000,)
    assert abs(np.argmax(np.abs(np.fft.rfft(samples))) - 440) <= 1


def test_integer_scaling():
    assert to_float32(np.array([-32768, 0, 16384], dtype=np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert to_float32(np.array([0, 128, 255], dtype=np.uint8)).tolist() == pytest.approx([-1.0, 0.0, 127 / 128])


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not audio\n" * 20), "not a readable audio file"),
        (lambda p: p.write_bytes(open_wav_header(p)[:30]), "not a readable audio file"),
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def open_wav_header(path):
    sf.write(str(path), np.zeros(16000, dtype=np.float32), 16000)
    return path.read_bytes()


def test_missing_short_and_nan_inputs(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="too short"):
        load_audio(write_wav(tmp_path / "short.wav", np.zeros(1600, dtype=np.float32), 16000))
    with pytest.raises(AudioError, match="NaN"):
        prepare_samples(np.full(16000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


def test_truncated_data_keeps_what_is_there(tmp_path, tone):
    data = write_wav(tmp_path / "full.wav", tone, 16000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 2 * 8000])
    np.testing.assert_array_equal(load_audio(cut), load_audio(tmp_path / "full.wav")[:8000])


def test_the_dc_blocker_takes_out_an_offset_in_any_chunking_and_keeps_the_speech_band(tone):
    whole = remove_dc(tone)
    blocker, position, pieces = DCBlocker(), 0, []
    for size in random_chunks(len(tone), random.Random(0)):
        pieces.append(blocker(tone[position : position + size]))
        position += size
    assert np.array_equal(np.concatenate(pieces), whole)
    # A constant offset from the first sample on: a twentieth of it is left after 0.2 s, and
    # nothing after 0.5 s (the filter is linear: offset and signal pass separately).
    shifted = remove_dc(tone + 0.1)
    assert np.abs(shifted - whole)[3200:].max() < 0.1 / 20
    assert np.abs(shifted - whole)[8000:].max() < 1e-3
    # The 440 Hz tone passes as it was (its power within 0.01 dB after the start).
    assert 10 * np.log10((whole[3200:] ** 2).mean() / (tone[3200:] ** 2).mean()) == pytest.approx(0, abs=0.01)


def mains(n: int, hz: float, amplitude: float, multiples=(1, 3, 5)) -> np.ndarray:
    """``n`` samples of a hum at ``hz``: the fundamental at ``amplitude``, each listed multiple
    at ``amplitude / multiple`` (the robustness bench's is 1, 1/2, 1/4; any will do here)."""
    t = np.arange(n) / 16000
    return sum(amplitude / k * np.sin(2 * np.pi * k * hz * t + k) for k in multiples)


def test_the_hum_filter_takes_out_a_hum_in_any_chunking_and_keeps_the_tones_between():
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    hum = mains(tone.size, 50.0, 0.01)
    whole = HumFilter(50.0)(tone + hum)
    filter_, position, pieces = HumFilter(50.0), 0, []
    for size in random_chunks(len(tone), random.Random(0)):
        pieces.append(filter_(tone[position : position + size] + hum[position : position + size]))
        position += size
    assert np.array_equal(np.concatenate(pieces), whole)
    # The filter is linear (hum and tone pass separately): after 1.5 s (the 50 Hz notch, 1.7 Hz
    # wide, rings that long) the hum is 60 dB down; the 440 Hz tone, between the notches at
    # 400 Hz and (none: past the 8th multiple) 450 Hz, keeps its power within 0.25 dB.
    tone_alone = HumFilter(50.0)(tone)
    assert np.abs(whole - tone_alone)[24000:].max() < 0.01 / 1000
    assert 10 * np.log10((tone_alone[8000:] ** 2).mean() / (tone[8000:] ** 2).mean()) == pytest.approx(0, abs=0.25)
    # Chained after the DC blocker, as the recognizers run them.
    both = InputFilter(remove_dc=True, remove_hum=50.0)(tone + hum + 0.1)
    assert np.array_equal(both, HumFilter(50.0)(DCBlocker()(tone + hum + 0.1)))
    assert not InputFilter() and np.array_equal(InputFilter()(tone), tone)
    with pytest.raises(ValueError, match="mains frequency"):
        HumFilter(9000.0)


def test_hum_is_found_at_its_frequency_and_level_and_not_in_noise_or_short_inputs():
    rng = np.random.default_rng(0)
    noise = 0.003 * rng.standard_normal(3 * 16000)  # a room's hiss, -50 dB full scale
    for hz in (50.0, 60.0):
        hum = mains(noise.size, hz, 0.01)
        found_hz, db = hum_level(noise + hum)
        assert found_hz == hz
        assert db == pytest.approx(10 * np.log10(np.mean(hum ** 2)), abs=0.5)
        assert hum_warning(noise + hum) == f"mains hum at {hz:g} Hz ({db:.0f} dB full scale RMS) costs accuracy; --remove-hum {hz:g} takes it out"
    assert hum_level(noise) is None and hum_warning(noise) is None
    quiet = noise / 10 + mains(noise.size, 50.0, 0.0003)  # found, but under HUM_WARNING_DB (-60)
    assert hum_level(quiet)[0] == 50.0 and hum_warning(quiet) is None
    assert hum_level((noise + mains(noise.size, 50.0, 0.01))[:15999]) is None  # under a second: the 1 Hz spectrum needs one


def test_the_hum_spectrum_is_welchs():
    from scipy.signal import welch

    from speechrnn.audio import _low_spectrum

    for n in (16000, 50321):  # (a last part-second is left out, as welch leaves it)
        x = np.random.default_rng(n).standard_normal(n) * 0.01 + 0.3 + mains(n, 50.0, 0.01)
        expected = welch(x, fs=16000, nperseg=16000, noverlap=0)[1][:505]
        assert np.allclose(_low_spectrum(x, 16000, 505), expected, rtol=1e-9, atol=0)


def test_loading_a_set_names_every_file_that_cannot_be_read(tmp_path, tone):
    from speechrnn.data import Utterance, load_waves

    good = str(write_wav(tmp_path / "good.wav", tone, 16000))
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    utterances = [Utterance(path, "a") for path in (good, str(tmp_path / "text.wav"), good, str(tmp_path / "empty.wav"))]
    with pytest.raises(AudioError, match=r"^2 of 4 audio files cannot be read: .*text\.wav: not a readable audio file.*; .*empty\.wav: file is empty"):
        load_waves(utterances)
    with pytest.raises(AudioError, match=r"^\S*text\.wav: not a readable audio file"):  # one: its own error
        load_waves(utterances[:2])
    assert len(load_waves(utterances[:1])) == 1
