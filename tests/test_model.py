from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from speechrnn.audio import load_audio
from speechrnn.data import pad_waves
from speechrnn.decoding import greedy_decode
from speechrnn.model import ModelConfig, SpeechModel, half_weight_rnn, load_model, save_model
from speechrnn.transcribe import recognize

TINY = dict(n_hidden=48, n_proj=48, n_layers=2, dropout=0.0)


@pytest.mark.parametrize("bidirectional, rnn_type, conv_channels", [(True, "gru", 0), (False, "gru", 0), (True, "lstm", 0), (True, "gru", 4), (False, "gru", 4)])
def test_save_load_round_trip_is_exact(tmp_path, tone, bidirectional, rnn_type, conv_channels):
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(bidirectional=bidirectional, rnn_type=rnn_type, conv_channels=conv_channels, **TINY)).eval()
    n = model.config.frontend.n_features
    model.frontend.set_cmvn(torch.randn(n), torch.rand(n) + 0.5)
    path = tmp_path / "m.pt"
    save_model(path, model, metadata={"note": "test"})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.metadata == {"note": "test"}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    wave = torch.from_numpy(tone)[None]
    with torch.no_grad():
        a = model(*model.features(wave, torch.tensor([16000])))[0]
        b = loaded(*loaded.features(wave, torch.tensor([16000])))[0]
    assert torch.equal(a, b)


def test_half_precision_file_loads_as_float32(tmp_path):
    model = SpeechModel(ModelConfig(**TINY))
    save_model(tmp_path / "h.pt", model, half=True)
    loaded = load_model(tmp_path / "h.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(loaded.head.weight, model.head.weight, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_half_precision_file_runs_its_gru_with_float16_weight_kernels(tmp_path, tone, bidirectional):
    """A file saved in half precision holds float16 weights: inference runs them through the
    float16-weight module, with the float32 module's outputs to rounding, batched or alone."""
    torch.manual_seed(0)
    save_model(tmp_path / "h.pt", SpeechModel(ModelConfig(bidirectional=bidirectional, **TINY)), half=True)
    model = load_model(tmp_path / "h.pt")
    assert half_weight_rnn(model) is not None
    waves = [torch.from_numpy(tone[:n]) for n in (16000, 7000, 12345)]
    padded, lens = pad_waves(waves)
    with torch.inference_mode():
        feats, feat_lens = model.features(padded, lens)
        log_probs, out_lens = model(feats, feat_lens)
        model.half_weight_kernels = False
        reference, _ = model(feats, feat_lens)
        del model.half_weight_kernels
        hidden = torch.randn(model.config.n_layers * (2 if bidirectional else 1), 3, model.config.n_hidden)
        with_hidden, _ = model(feats, feat_lens, hidden)
        model.half_weight_kernels = False
        torch.testing.assert_close(with_hidden, model(feats, feat_lens, hidden)[0], atol=1e-4, rtol=1e-4)
        del model.half_weight_kernels
        for i, wave in enumerate(waves):
            alone, _ = model(*model.features(wave[None], torch.tensor([len(wave)])))
            torch.testing.assert_close(log_probs[i, : out_lens[i]], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_probs, reference, atol=1e-4, rtol=1e-4)
    assert not torch.equal(log_probs, reference)  # (forward took the other kernels)


def test_float16_weight_kernels_only_for_float16_weights_in_inference(tmp_path):
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(**TINY)).eval()
    assert half_weight_rnn(model) is None  # float32 weights: float16 kernels would round them
    save_model(tmp_path / "h.pt", model, half=True)
    model = load_model(tmp_path / "h.pt")
    assert half_weight_rnn(model) is not None
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] += 1e-4  # no longer a float16 value: the cache sees the change
    assert half_weight_rnn(model) is None
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(model.rnn.weight_hh_l0.half().float())
    assert half_weight_rnn(model) is not None
    assert half_weight_rnn(model.train()) is None  # training keeps the float32 module and its gradients
    save_model(tmp_path / "lstm.pt", SpeechModel(ModelConfig(rnn_type="lstm", **TINY)), half=True)
    assert half_weight_rnn(load_model(tmp_path / "lstm.pt")) is None


def test_load_rejects_files_that_are_not_models(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="bad.pt"):
        load_model(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a speechrnn model"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no bundled model"):
        load_model("no-such-model")


@pytest.mark.parametrize("conv_channels, input_lookahead", [(0, 0), (4, 0), (0, 3)])
def test_batch_equals_one_at_a_time(tone, conv_channels, input_lookahead):
    """(With an input look-ahead a row's last frames see zeros after its end, not the padding.)"""
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(conv_channels=conv_channels, **{**TINY, "bidirectional": not input_lookahead}, input_lookahead=input_lookahead)).eval()
    waves = [torch.from_numpy(tone[:n]) for n in (16000, 7000, 12345)]
    padded, lens = pad_waves(waves)
    with torch.no_grad():
        batch_lp, batch_lens = model(*model.features(padded, lens))
        for i, wave in enumerate(waves):
            single_lp, single_lens = model(*model.features(wave[None], torch.tensor([len(wave)])))
            assert batch_lens[i] == single_lens[0]
            torch.testing.assert_close(batch_lp[i, : batch_lens[i]], single_lp[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional, lookahead, input_lookahead", [(True, 0, 0), (False, 2, 0), (False, 2, 2)])
def test_padded_gru_path_equals_packed_sequences(bidirectional, lookahead, input_lookahead):
    """The CPU fast path (each direction on padded rows) gives the packed module's outputs and
    gradients on every valid frame, and zeros past each length."""
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(bidirectional=bidirectional, lookahead=lookahead, input_lookahead=input_lookahead, io_dropout=0.0, **TINY)).train()
    feats = torch.randn(3, 40, model.config.frontend.n_features)
    feat_lens = torch.tensor([40, 29, 2])  # the last row has no output frame at all

    def run(force_packed: bool):
        model.zero_grad()
        hidden = torch.zeros(model.config.n_layers * (2 if bidirectional else 1), 3, model.config.n_hidden) if force_packed else None
        log_probs, out_lens = model(feats, feat_lens, hidden)
        valid = (torch.arange(log_probs.shape[1])[None] < out_lens[:, None])[..., None]
        (log_probs * valid).sum().backward()
        return log_probs * valid, [p.grad.clone() for p in model.parameters()]

    fast, fast_grads = run(force_packed=False)
    packed, packed_grads = run(force_packed=True)
    torch.testing.assert_close(fast, packed, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, packed_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_intermediate_log_probs_are_the_shared_head_on_the_lower_layers():
    """``inter_layer`` leaves the output as it was and adds what the same head reads from the
    lower layers: here a 1-layer model with the 2-layer model's first layer."""
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, "n_layers": 2})
    model = SpeechModel(config).eval()
    lower = SpeechModel(dataclasses.replace(config, n_layers=1)).eval()
    lower.load_state_dict({k: v for k, v in model.state_dict().items() if "_l1" not in k})
    feats = torch.randn(2, 30, config.frontend.n_features)
    feat_lens = torch.tensor([30, 17])
    with torch.no_grad():
        plain, plain_lens = model(feats, feat_lens)
        log_probs, out_lens, inter = model(feats, feat_lens, inter_layer=1)
        expected, _ = lower(feats, feat_lens)
    valid = (torch.arange(plain.shape[1])[None] < plain_lens[:, None])[..., None]
    torch.testing.assert_close(log_probs * valid, plain * valid, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inter * valid, expected * valid, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(inter * valid, plain * valid)  # the layers differ, so the check can fail
    with pytest.raises(ValueError, match="inter_layer"):
        model(feats, feat_lens, inter_layer=2)


def test_convolution_frontend_feeds_the_rnn_and_learns():
    """Two stride-2 layers leave a quarter of the features per channel; the model's outputs
    depend on the convolution's weights and its loss trains them."""
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(conv_channels=4, **TINY)).train()
    n = model.config.frontend.n_features
    assert model.proj[0].in_features == 4 * ((n + 3) // 4) * model.config.frame_stack
    feats, feat_lens = torch.randn(2, 30, n), torch.tensor([30, 21])
    log_probs, out_lens = model(feats, feat_lens)
    k = model.config.frame_stack
    assert log_probs.shape[:2] == (2, 30 // k) and out_lens.tolist() == [30 // k, 21 // k]
    targets = torch.tensor([[3, 4, 5], [6, 7, 0]])
    F.ctc_loss(log_probs.transpose(0, 1), targets, out_lens, torch.tensor([3, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.conv.parameters())
    model.eval()
    with torch.no_grad():
        before = model(feats, feat_lens)[0]
        model.conv[0].weight.mul_(2.0)
        assert not torch.allclose(before, model(feats, feat_lens)[0])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_convolution_frontend_of_a_streaming_model_is_causal(bidirectional):
    """A unidirectional model's convolutions see no frame after their own (so streaming adds no
    latency for them); a bidirectional model's see the next one."""
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(conv_channels=4, bidirectional=bidirectional, **TINY)).eval()
    n, k = model.config.frontend.n_features, model.config.frame_stack
    feats = torch.randn(1, 60, n)
    changed = feats.clone()
    changed[0, 10 * k :] += 1.0  # the input of output frames from 10 on
    with torch.no_grad():
        base, moved = model(feats, torch.tensor([60]))[0], model(changed, torch.tensor([60]))[0]
    differs = (base - moved).abs().amax(-1)[0] > 1e-6
    assert int(differs.nonzero()[0]) == (0 if bidirectional else 10)


def test_tiny_model_overfits_a_handful_of_utterances(speech_dir):
    folder, phrases = speech_dir
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(n_hidden=96, n_proj=96, n_layers=2, dropout=0.0))
    waves = [torch.from_numpy(load_audio(folder / f"{name}.wav")) for name in phrases]
    texts = list(phrases.values())
    padded, lens = pad_waves(waves)
    with torch.no_grad():
        raw = model.frontend.transform(model.frontend.log_mel(padded))
        model.frontend.set_cmvn(raw.mean((0, 1)), raw.std((0, 1)))
    targets = [torch.tensor(model.tokenizer.encode(t)) for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for step in range(400):
        log_probs, out_lens = model(*model.features(padded, lens))
        loss = F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets), out_lens, torch.tensor([len(t) for t in targets]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % 25 == 24 and [h.text for h in recognize(model.eval(), waves)] == texts:
            break
        model.train()
    assert [h.text for h in recognize(model.eval(), waves)] == texts


def test_greedy_decoding_through_the_model_shapes():
    model = SpeechModel(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        log_probs, out_lens = model(*model.features(torch.zeros(2, 4000), torch.tensor([4000, 300])))
    assert out_lens.tolist() == [7, 0]  # (4000 - 400) // 160 + 1 = 23 frames, stacked by 3
    hyps = greedy_decode(log_probs, out_lens, model.tokenizer, model.config.frame_shift)
    assert hyps[1].text == "" and hyps[1].words == []


def test_level_normalised_model_hears_a_quiet_input_as_a_loud_one(tmp_path, tone):
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, level_db=-25.0)).eval()
    wave = torch.from_numpy(tone)
    lens = torch.tensor([len(tone), len(tone)])
    feats, _ = model.features(torch.stack([wave, wave * 0.02]), lens)
    torch.testing.assert_close(feats[1], feats[0], rtol=1e-3, atol=1e-3)
    plain = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1))
    plain_feats, _ = plain.features(torch.stack([wave, wave * 0.02]), lens)
    assert (plain_feats[1] - plain_feats[0]).abs().max() > 1  # without it the features differ
    save_model(tmp_path / "m.pt", model)
    assert load_model(tmp_path / "m.pt").config.level_db == -25.0
    with pytest.raises(ValueError, match="bidirectional"):
        ModelConfig(bidirectional=False, level_db=-25.0)


def test_input_lookahead_needs_a_unidirectional_model():
    """A bidirectional model's backward direction reads every future frame already."""
    with pytest.raises(ValueError, match="input_lookahead"):
        ModelConfig(input_lookahead=2)
    assert ModelConfig(bidirectional=False, input_lookahead=2).latency_frames == 2


def test_configs_that_differ_only_in_level_match_apart_from_it():
    """`ModelConfig.matches_apart_from_level`, which `--init-from` and the weight blends
    (mix_into, average_models) check: a calibrated input level (``level_db``, measured after
    training) does not make two networks different; any other field does."""
    plain = ModelConfig(n_hidden=16, n_proj=16, n_layers=1)
    calibrated = dataclasses.replace(plain, level_db=-25.0)
    assert plain != calibrated and plain.matches_apart_from_level(calibrated) and calibrated.matches_apart_from_level(plain)
    unidirectional = dataclasses.replace(plain, bidirectional=False, lookahead=1)  # (level_db is for bidirectional models only)
    for other in (dataclasses.replace(calibrated, n_hidden=8), unidirectional, dataclasses.replace(calibrated, frontend=dataclasses.replace(plain.frontend, log_offset=1e-10))):
        assert not plain.matches_apart_from_level(other), other


def test_emissions_from_concurrent_batches_equal_one_batch_at_a_time(tone):
    from speechrnn.transcribe import emissions, emissions_in_order

    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(**TINY)).eval()
    waves = [torch.from_numpy(tone[: 4000 + 997 * i]) for i in range(9)]
    threads = torch.get_num_threads()
    serial = dict(emissions(model, waves, batch_size=2, workers=1))
    concurrent = dict(emissions(model, waves, batch_size=2, workers=3))
    assert torch.get_num_threads() == threads  # restored
    assert sorted(concurrent) == list(range(9))
    for i, log_probs in serial.items():
        torch.testing.assert_close(concurrent[i], log_probs, atol=1e-5, rtol=1e-5)
    in_order = emissions_in_order(model, waves, batch_size=2)
    assert [lp.shape[0] for lp in in_order] == [serial[i].shape[0] for i in range(9)]  # lengths grow with the input
    for i, log_probs in enumerate(in_order):
        torch.testing.assert_close(log_probs, serial[i], atol=1e-5, rtol=1e-5)


def test_differing_weights_names_what_differs_and_half_compares_as_shipped(tmp_path):
    """`differing_weights` (scripts/compare_weights.py) is what checks a rerun against a bundled
    model: equal files read equal, a half-precision copy equals its float32 source only once
    rounded, and a changed tensor is named."""
    import subprocess
    import sys

    from speechrnn.model import differing_weights, save_half_copy

    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(**TINY))
    save_model(tmp_path / "a.pt", model)
    save_model(tmp_path / "same.pt", model)
    save_half_copy(tmp_path / "a.pt", tmp_path / "half.pt")
    assert differing_weights(tmp_path / "a.pt", tmp_path / "same.pt") == []
    assert differing_weights(tmp_path / "a.pt", tmp_path / "half.pt") != []  # random float32 weights are not float16 values
    assert differing_weights(tmp_path / "a.pt", tmp_path / "half.pt", half=True) == []
    name, value = next((k, v) for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    with torch.no_grad():
        value.view(-1)[0] += 1.0
    save_model(tmp_path / "changed.pt", model)
    assert differing_weights(tmp_path / "a.pt", tmp_path / "changed.pt", half=True) == [name]
    assert differing_weights(load_model(tmp_path / "a.pt"), load_model(tmp_path / "changed.pt")) == [name]  # loaded models too
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_weights.py"
    same = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "half.pt"), "--half"], capture_output=True, text=True)
    changed = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "changed.pt"), "--difference", name], capture_output=True, text=True)
    assert (same.returncode, json.loads(same.stdout)["differing"]) == (0, 0)
    assert (changed.returncode, json.loads(changed.stdout)["names"]) == (1, [name])
    moved = json.loads(changed.stdout)["differences"][name]  # one element up by 1, the rest as they were
    assert (moved["min"], moved["max"]) == (0.0, 1.0) and moved["mean"] == pytest.approx(1 / value.numel(), abs=1e-4)
    missing = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "same.pt"), "--difference", "no.such.tensor"], capture_output=True, text=True)
    assert missing.returncode == 2 and "--difference no.such.tensor: not a tensor of the same shape in both files" in missing.stderr


@pytest.mark.parametrize("lookahead, input_lookahead", [(0, 0), (2, 0), (2, 1)])
def test_widened_lookahead_keeps_every_output_and_learns_its_new_taps(lookahead, input_lookahead):
    from speechrnn.model import widened_lookahead

    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(**{**TINY, "bidirectional": False, "lookahead": lookahead, "input_lookahead": input_lookahead})).eval()
    with torch.no_grad():
        if lookahead:
            model.lookahead.weight.normal_()  # a trained row convolution, not the identity it starts as
    waves = torch.randn(2, 8000) * 0.1
    feats, feat_lens = model.features(waves, torch.tensor([8000, 5000]))
    wide = widened_lookahead(model, 4, 3)
    assert (wide.config.lookahead, wide.config.input_lookahead) == (4, 3)
    before, lens = model(feats, feat_lens)
    after, wide_lens = wide(feats, feat_lens)
    assert torch.equal(lens, wide_lens)
    for row, n in enumerate(lens.tolist()):
        torch.testing.assert_close(after[row, :n], before[row, :n])
    # The added taps and input weights are trained weights like the others: a gradient reaches them.
    wide.train()
    log_probs, _ = wide(feats, feat_lens)
    log_probs[:, :, 1].sum().backward()
    assert wide.lookahead.weight.grad[:, 0, lookahead + 1 :].abs().sum() > 0
    n_old = model.proj[0].in_features
    assert wide.proj[0].weight.grad[:, n_old:].abs().sum() > 0
    with pytest.raises(ValueError, match="cannot widen"):
        widened_lookahead(wide, 3)
    with pytest.raises(ValueError, match="cannot widen"):
        widened_lookahead(wide, 4, 2)


@pytest.mark.parametrize("bidirectional, conv_channels", [(True, 4), (False, 0)])
def test_widened_units_keep_every_output_and_their_outgoing_weights_learn(bidirectional, conv_channels):
    from speechrnn.model import widened_units

    torch.manual_seed(0)
    extra = {} if bidirectional else {"lookahead": 2}
    model = SpeechModel(ModelConfig(**{**TINY, "n_layers": 2, "bidirectional": bidirectional, "conv_channels": conv_channels, **extra})).eval()
    waves = torch.randn(2, 8000) * 0.1
    feats, feat_lens = model.features(waves, torch.tensor([8000, 5000]))
    h, p = model.config.n_hidden, model.config.n_proj
    torch.manual_seed(5)
    wide = widened_units(model, h + 5, p + 3)
    drawn = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), drawn)  # its seeded draws leave the caller's random state alone
    assert (wide.config.n_hidden, wide.config.n_proj) == (h + 5, p + 3) and wide.n_params > model.n_params
    before, lens = model(feats, feat_lens)
    after, wide_lens = wide(feats, feat_lens)
    assert torch.equal(lens, wide_lens)
    for row, n in enumerate(lens.tolist()):
        torch.testing.assert_close(after[row, :n], before[row, :n])
    # The added units are active, so the zero weights that carry their output onward get
    # gradients: training can use them.
    assert wide.rnn.weight_ih_l0[h : wide.config.n_hidden].abs().sum() > 0  # their incoming weights are a fresh model's
    wide.train()
    log_probs, _ = wide(feats, feat_lens)
    log_probs[:, :, 1].sum().backward()
    assert wide.head.weight.grad[:, h : h + 5].abs().sum() > 0
    assert wide.rnn.weight_hh_l0.grad[:h, h:].abs().sum() > 0  # old units' recurrent weights from the new ones
    assert wide.rnn.weight_ih_l0.grad[:h, p:].abs().sum() > 0  # and their inputs from the new projection units
    with pytest.raises(ValueError, match="cannot widen"):
        widened_units(wide, h)
    with pytest.raises(ValueError, match="only a GRU"):
        widened_units(SpeechModel(ModelConfig(**{**TINY, "rnn_type": "lstm"})), h + 1)


def test_a_bundled_name_is_not_shadowed_by_a_folder_of_that_name(tmp_path, monkeypatch):
    from speechrnn.model import BUNDLED_DIR, resolve_model_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "offline").mkdir()
    (tmp_path / "mine").mkdir()
    assert resolve_model_path("offline") == BUNDLED_DIR / "offline.pt"
    with pytest.raises(FileNotFoundError, match="mine: is a directory, not a model file"):
        resolve_model_path("mine")
