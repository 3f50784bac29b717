from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from conftest import write_wav
from speechrnn.audio import load_audio
from speechrnn.features import CMVNAccumulator, Frontend, FrontendConfig, normalize_level, num_frames, speech_level_db


def raw_mfcc(frontend: Frontend, samples: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return frontend.mfcc(frontend.log_mel(torch.from_numpy(samples)[None]))[0].numpy()


def test_matches_librosa_mfcc(tone):
    """Same settings as librosa: periodic Hann, HTK mel, no filter norm, no centring.

    Stated tolerance: 1e-3 absolute + 1e-4 relative on MFCCs whose range is about +-100
    (float32 against librosa's float64 arithmetic)."""
    config = FrontendConfig(n_mels=40, n_mfcc=13)
    frontend = Frontend(config)
    ours = raw_mfcc(frontend, tone)
    mel = librosa.feature.melspectrogram(
        y=tone.astype(np.float64), sr=16000, n_fft=400, hop_length=160, win_length=400, center=False,
        power=2.0, n_mels=40, fmin=config.f_min, fmax=config.f_max, htk=True, norm=None,
    )
    theirs = librosa.feature.mfcc(S=np.log(mel + config.log_offset), n_mfcc=13, dct_type=2, norm="ortho").T
    assert ours.shape == theirs.shape == (num_frames(16000, config), 13)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


def test_log_mel_is_torchaudios_mel_spectrogram_exactly(tone):
    import torchaudio

    config = FrontendConfig()
    frontend = Frontend(config)
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        f_min=config.f_min, f_max=config.f_max, n_mels=config.n_mels, power=2.0, center=False,
    )
    waves = torch.stack([torch.from_numpy(tone), torch.from_numpy(tone[::-1].copy()) * 0.1])
    expected = torch.log(reference(waves) + config.log_offset).transpose(-1, -2)
    assert torch.equal(frontend.log_mel(waves), expected)


def test_path_and_array_give_identical_features(tmp_path, tone):
    path = write_wav(tmp_path / "t.wav", tone, 16000, subtype="FLOAT")
    frontend = Frontend(FrontendConfig())
    from_path = frontend(torch.from_numpy(load_audio(path))[None], torch.tensor([16000]))[0]
    from_array = frontend(torch.from_numpy(tone)[None], torch.tensor([16000]))[0]
    assert torch.equal(from_path, from_array)


def test_batch_rows_equal_single_rows(tone):
    frontend = Frontend(FrontendConfig())
    short = tone[:9000]
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9000] = torch.from_numpy(tone), torch.from_numpy(short)
    feats, lens = frontend(batch, torch.tensor([16000, 9000]))
    assert lens.tolist() == [num_frames(16000, frontend.config), num_frames(9000, frontend.config)]
    alone, _ = frontend(torch.from_numpy(short)[None], torch.tensor([9000]))
    torch.testing.assert_close(feats[1, : lens[1]], alone[0], rtol=1e-5, atol=1e-5)


def test_cmvn_normalises_to_zero_mean_unit_variance(tone):
    frontend = Frontend(FrontendConfig())
    acc = CMVNAccumulator(frontend.config.n_mfcc)
    raw = torch.from_numpy(raw_mfcc(frontend, tone))
    acc.update(raw[:50])
    acc.update(raw[50:])
    frontend.set_cmvn(*acc.stats())
    feats, _ = frontend(torch.from_numpy(tone)[None], torch.tensor([16000]))
    torch.testing.assert_close(feats[0].mean(0), torch.zeros(frontend.config.n_mfcc), atol=1e-3, rtol=0)
    torch.testing.assert_close(feats[0].std(0, unbiased=False), torch.ones(frontend.config.n_mfcc), atol=1e-2, rtol=0)


def test_level_normalisation_undoes_a_gain_within_its_range(tone):
    config = FrontendConfig()
    wave = torch.from_numpy(tone)
    waves = torch.stack([wave, wave * 0.01, wave * 0.3, torch.zeros_like(wave)])
    lens = torch.tensor([len(tone)] * 3 + [len(tone) // 2])
    levels = speech_level_db(waves, lens, config).tolist()
    assert levels[1] == pytest.approx(levels[0] - 40, abs=1e-3) and levels[2] == pytest.approx(levels[0] + 20 * np.log10(0.3), abs=1e-3)
    normalised = normalize_level(waves, lens, -25.0, config)
    assert speech_level_db(normalised[:3], lens[:3], config).tolist() == pytest.approx([-25.0] * 3, abs=1e-3)
    torch.testing.assert_close(normalised[1], normalised[0], rtol=1e-4, atol=1e-6)
    assert torch.equal(normalised[3], waves[3])  # silence is not raised
    quiet = normalize_level(waves[:1] * 1e-3, lens[:1], -25.0, config)  # 60 dB down: raised by 30 dB only
    assert float(speech_level_db(quiet, lens[:1], config)[0]) == pytest.approx(levels[0] - 30, abs=1e-3)


@pytest.mark.parametrize("start_db", [None, 60.0], ids=["no-start-level", "start-level"])
@pytest.mark.parametrize("through", ["numpy", "torch"])
def test_level_tracking_divides_by_the_decaying_peak(through, start_db):
    """Against the rule written as a loop: frame t minus max over s <= t of (level_s - decay * (t - s)),
    with a start level as a frame s = -1 of that level (in dB).
    On the CPU it runs in NumPy; a tensor that requires grad (as on a GPU) takes the torch path."""
    config = FrontendConfig(level_decay_db=10.0, level_start_db=start_db)
    decay = 10.0 * config.hop_length / config.sample_rate * np.log(10) / 10
    torch.manual_seed(0)
    log_mel = torch.randn(2, 50, config.n_mels) * 3
    log_mel[0, 10] += 20  # a loud frame: the next frames are measured against it, less each frame
    frontend = Frontend(config)
    track = (lambda x, *args: frontend.track_level(x.clone().requires_grad_(), *args)) if through == "torch" else frontend.track_level
    out, _ = track(log_mel)
    out = out.detach()
    first, peak = track(log_mel[:, :23])
    second, _ = track(log_mel[:, 23:], peak.detach(), 23)  # in two chunks, the peak carried
    torch.testing.assert_close(torch.cat([first, second], dim=1).detach(), out, atol=0, rtol=0)
    levels = torch.logsumexp(log_mel.double(), -1)
    start = [] if start_db is None else [(start_db * np.log(10) / 10, -1)]
    for b in range(2):
        for t in range(50):
            running = max(level - decay * (t - s) for level, s in start + [(float(levels[b, s]), s) for s in range(t + 1)])
            torch.testing.assert_close(out[b, t], log_mel[b, t] - running, atol=1e-5, rtol=0)
    assert float(out[0, 10].logsumexp(-1)) == pytest.approx(0.0, abs=1e-5)  # (louder than the start level)
    if start_db is not None:  # the start level decides the first frames (their levels are 30-40 dB)
        assert float(out[1, 0].logsumexp(-1)) == pytest.approx(float(levels[1, 0]) - (start_db * np.log(10) / 10 - decay), abs=1e-5)


def test_a_start_level_keeps_a_weak_onset_below_the_loud_sound_after_it(tone):
    """Quiet noise, a faint onset (-20 dB) and a loud tone: tracked from the first frame, each
    new loudest frame is its own level, so the onset reads as loud as the tone (0 dB); from a
    start level near the tone's, it stays about 20 dB below it (less the start level's fall), as
    without tracking."""
    rng = np.random.default_rng(3)
    wave = 1e-4 * rng.standard_normal(len(tone)).astype(np.float32)
    onset, loud = slice(4000, 5600), slice(5600, len(tone))
    wave[onset] += 0.1 * tone[onset]
    wave[loud] += tone[loud]
    waves = torch.from_numpy(wave)[None]
    plain = Frontend(FrontendConfig())
    tone_db = float(plain.frame_level_db(waves)[0, 60:].median())
    frame = 30  # within the onset (frames 25..34), its window past the onset's start

    def onset_db(config: FrontendConfig) -> float:
        frontend = Frontend(config)
        return float(frontend.log_mel(waves)[0, frame].logsumexp(-1)) * 10 / np.log(10)

    assert onset_db(FrontendConfig(level_decay_db=10.0)) == pytest.approx(0.0, abs=0.5)
    fallen = 10.0 * (frame + 1) * 160 / 16000  # dB the start level has fallen by then (10 dB/s)
    assert onset_db(FrontendConfig(level_decay_db=10.0, level_start_db=tone_db)) == pytest.approx(-20.0 + fallen, abs=1.0)
    with pytest.raises(ValueError, match="level tracking"):
        FrontendConfig(level_start_db=20.0)


def test_a_start_level_bounded_by_the_lead_in_follows_a_quiet_recording(tone):
    """A fixed start level reads a recording 30 dB quieter 30 dB quieter (until the level falls
    to it); bounded to a lead above the first frame, a recording whose start level comes from
    that bound reads at the same level at any gain (short of the log's floor)."""
    rng = np.random.default_rng(4)
    wave = 3e-2 * rng.standard_normal(len(tone)).astype(np.float32)  # a lead-in well above the log's floor at -30 dB too
    wave[4000:] += tone[4000:]
    waves = torch.from_numpy(wave)[None]
    quiet = waves * 10 ** (-30 / 20)
    first_db = float(Frontend(FrontendConfig()).frame_level_db(waves)[0, 0])
    fixed = Frontend(FrontendConfig(level_decay_db=10.0, level_start_db=first_db + 70.0))
    bounded = Frontend(FrontendConfig(level_decay_db=10.0, level_start_db=first_db + 70.0, level_start_lead_db=55.0))
    speech = slice(30, 50)  # the tone's first frames, while the start level still decides
    assert (fixed.log_mel(waves)[0, speech] - fixed.log_mel(quiet)[0, speech]).mean() == pytest.approx(30 * np.log(10) / 10, abs=0.1)
    # Frame levels (bins near the log's floor differ at -30 dB whatever the tracking does),
    # read against the start level, below the tone's own.
    levels = bounded.log_mel(waves)[0].logsumexp(-1) * 10 / np.log(10)
    assert levels[speech].max() < -3.0
    torch.testing.assert_close(bounded.log_mel(quiet)[0, speech].logsumexp(-1), bounded.log_mel(waves)[0, speech].logsumexp(-1), atol=0.01, rtol=0)
    assert float(levels[0]) == pytest.approx(-55.0 + 10.0 * 160 / 16000, abs=1e-3)  # less one frame's fall
    with pytest.raises(ValueError, match="level_start_db"):
        FrontendConfig(level_decay_db=10.0, level_start_lead_db=40.0)


def test_level_tracking_makes_features_independent_of_gain(tone):
    noisy = tone + 0.05 * np.random.default_rng(1).standard_normal(len(tone)).astype(np.float32)
    waves = torch.from_numpy(noisy)[None]
    tracked = Frontend(FrontendConfig(level_decay_db=10.0))
    plain = Frontend(FrontendConfig())
    for gain in (0.3, 10.0):  # -10.5 and +20 dB
        # Equal up to the log's fixed floor (1e-6), which the faintest mel bins come near at -10 dB.
        difference = (tracked.log_mel(waves * gain) - tracked.log_mel(waves)).abs()
        assert difference.max() < 0.05 and difference.mean() < 1e-3
        assert (plain.log_mel(waves * gain) - plain.log_mel(waves)).abs().median() > 2.0


def test_utterance_cmn_removes_each_rows_channel_mean_and_a_fixed_channel_response(tone):
    noisy = tone + 0.05 * np.random.default_rng(2).standard_normal(len(tone)).astype(np.float32)
    frontend = Frontend(FrontendConfig(kind="logmel", utterance_cmn=True))
    wave = torch.from_numpy(noisy)
    # A padded batch: each row's valid frames have zero mean per channel, alone or batched.
    batch = torch.zeros(2, len(tone))
    batch[0], batch[1, :9000] = wave, wave[:9000]
    feats, lens = frontend(batch, torch.tensor([len(tone), 9000]))
    for b in range(2):
        torch.testing.assert_close(feats[b, : lens[b]].mean(0), torch.zeros(frontend.config.n_mels), atol=1e-4, rtol=0)
    alone, _ = frontend(wave[None, :9000], torch.tensor([9000]))
    torch.testing.assert_close(feats[1, : lens[1]], alone[0], rtol=1e-5, atol=1e-5)
    # A gain, and a first-order filter (a fixed tilt of the spectrum, roughly constant within a
    # mel band): far smaller changes than without the normalisation.
    plain = Frontend(FrontendConfig(kind="logmel"))
    tilted = torch.from_numpy(np.convolve(noisy, [1.0, -0.6])[: len(noisy)].astype(np.float32)) * 4.0
    n = torch.tensor([len(tone)])
    changed = (frontend(tilted[None], n)[0] - frontend(wave[None], n)[0]).abs().mean()
    changed_plain = (plain(tilted[None], n)[0] - plain(wave[None], n)[0]).abs().mean()
    assert changed < 0.1 * changed_plain


def test_utterance_cmn_is_refused_for_streaming_models_and_beside_level_tracking():
    from speechrnn.model import ModelConfig

    with pytest.raises(ValueError, match="bidirectional"):
        ModelConfig(frontend=FrontendConfig(utterance_cmn=True), bidirectional=False)
    with pytest.raises(ValueError, match="alternatives"):
        FrontendConfig(utterance_cmn=True, level_decay_db=10.0)


def test_running_cmn_moves_from_the_prior_to_the_signals_own_mean(tone):
    """Frame t less (n0 * prior + the frames so far) / (n0 + t + 1): a fixed channel response c
    is left as c * n0 / (n0 + t + 1), fading as frames arrive; chunks give the whole signal's frames."""
    frontend = Frontend(FrontendConfig(kind="logmel", running_cmn_frames=50.0))
    frontend.cmn_prior.copy_(torch.linspace(-12.0, -6.0, frontend.config.n_mels))
    noisy = torch.from_numpy(tone + 0.05 * np.random.default_rng(2).standard_normal(len(tone)).astype(np.float32))
    log_mel = Frontend(FrontendConfig(kind="logmel")).log_mel(noisy[None])
    out, carried = frontend.running_channel_mean(log_mel)
    t = torch.arange(log_mel.shape[1], dtype=torch.float64)[:, None]
    expected = log_mel[0].double() - (50.0 * frontend.cmn_prior.double() + log_mel[0].double().cumsum(0)) / (50.0 + t + 1)
    torch.testing.assert_close(out[0].double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(carried.total[0], 50.0 * frontend.cmn_prior.double() + log_mel[0].double().sum(0))  # the numerator carried on
    assert carried.count.tolist() == [log_mel.shape[1]] and carried.loudest is None  # and the frames in it
    offset = torch.linspace(-3.0, 3.0, frontend.config.n_mels)  # a fixed response: a constant per channel
    shifted = frontend.running_channel_mean(log_mel + offset)[0]
    torch.testing.assert_close((shifted - out)[0].double(), offset.double() * 50.0 / (50.0 + t + 1), atol=1e-4, rtol=0)
    head, carried = frontend.running_channel_mean(log_mel[:, :7])
    assert frontend.running_channel_mean(log_mel[:, :0], carried)[1] is carried  # no frames: the mean as it was
    tail = frontend.running_channel_mean(log_mel[:, 7:], carried)[0]
    torch.testing.assert_close(torch.cat([head, tail], 1), out, atol=1e-5, rtol=0)
    # The frontend applies it after level tracking, for streaming and offline models alike.
    tracked = Frontend(FrontendConfig(kind="logmel", running_cmn_frames=50.0, level_decay_db=10.0))
    tracked.load_state_dict(frontend.state_dict())
    feats, _ = tracked(noisy[None], torch.tensor([len(tone)]))
    torch.testing.assert_close(feats, tracked.running_channel_mean(tracked.log_mel(noisy[None]))[0])


def _gated_frontend(gate_db: float) -> Frontend:
    config = FrontendConfig(kind="logmel", level_decay_db=10.0, level_start_db=40.0, level_start_lead_db=30.0, running_cmn_frames=50.0, running_cmn_gate_db=gate_db)
    frontend = Frontend(config)
    frontend.cmn_prior.copy_(torch.linspace(-12.0, -6.0, config.n_mels))
    return frontend


def test_only_frames_near_the_loudest_enter_a_gated_running_mean(tone):
    """Faint noise before a tone stays out of the mean however long it lasts (4 s: level
    tracking's running level has long fallen to it): its frames are taken relative to the
    prior alone, and the tone's relative to the prior and the tone's frames so far, as if the
    noise had not been; chunks carry the numerator, the count and the loudest level exactly."""
    quiet = torch.from_numpy(1e-3 * np.random.default_rng(1).standard_normal(64000).astype(np.float32))
    frontend = _gated_frontend(15.0)
    log_mel, levels = frontend.log_mel_and_levels(torch.cat([quiet, torch.from_numpy(tone)])[None])
    onset = (len(quiet) - 400) // 160 + 1  # the first frame with tone in it
    out, carried = frontend.running_channel_mean(log_mel, levels=levels)
    entered = (out - (log_mel - frontend.cmn_prior)).abs().amax(-1)[0] > 1e-4  # frames whose mean moved off the prior
    first = int(torch.nonzero(entered)[0])
    assert onset <= first <= onset + 1 and entered[first:].all()
    enters = (torch.arange(log_mel.shape[1]) >= first).double()[:, None]  # every frame from the tone's on
    x = log_mel[0].double()
    expected = x - (50.0 * frontend.cmn_prior.double() + (x * enters).cumsum(0)) / (50.0 + enters.cumsum(0))
    torch.testing.assert_close(out[0].double(), expected, atol=1e-4, rtol=0)
    assert float(carried.count[0]) == float(enters.sum()) and float(carried.loudest[0]) == float(levels[0].max())
    head, carried = frontend.running_channel_mean(log_mel[:, : onset + 5], levels=levels[:, : onset + 5])
    tail = frontend.running_channel_mean(log_mel[:, onset + 5 :], carried, levels[:, onset + 5 :])[0]
    torch.testing.assert_close(torch.cat([head, tail], 1), out, atol=1e-5, rtol=0)
    ungated = _gated_frontend(0.0).running_channel_mean(log_mel)[0]
    assert (ungated - out)[0, onset + 2 :].abs().amax() > 1.0  # (the noise in the mean moves the tone's frames)
    with pytest.raises(ValueError, match="levels"):
        frontend.running_channel_mean(log_mel)


def test_running_cmn_options_are_checked_and_old_files_have_no_prior():
    from speechrnn.model import ModelConfig

    with pytest.raises(ValueError, match="alternatives"):
        FrontendConfig(utterance_cmn=True, running_cmn_frames=100.0)
    with pytest.raises(ValueError, match="running_cmn_frames"):
        FrontendConfig(running_cmn_frames=-1.0)
    with pytest.raises(ValueError, match="needs running_cmn_frames and level_decay_db"):
        FrontendConfig(running_cmn_frames=100.0, running_cmn_gate_db=15.0)
    with pytest.raises(ValueError, match="needs running_cmn_frames and level_decay_db"):
        FrontendConfig(level_decay_db=10.0, running_cmn_gate_db=15.0)
    with pytest.raises(ValueError, match="running_cmn_gate_db must be >= 0"):
        FrontendConfig(level_decay_db=10.0, running_cmn_frames=100.0, running_cmn_gate_db=-1.0)
    ModelConfig(frontend=FrontendConfig(running_cmn_frames=100.0, level_decay_db=10.0), bidirectional=False)  # streaming models may
    assert "cmn_prior" not in Frontend(FrontendConfig()).state_dict()

