from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import random

from conftest import random_chunks, write_wav
from speechrnn.audio import AudioError, DCBlocker, load_audio, prepare_samples, remove_dc, resample, to_float32


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
