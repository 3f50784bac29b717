"""The benchmark and analysis scripts: word latency (bench_streaming), error positions, set_frontend, widen_model, average_models, level_stats; the machine they name."""
from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import load_script
from speechrnn.audio import load_audio
from speechrnn.data import an4_utterances

bench = load_script("scripts/bench_streaming.py", "bench_streaming")


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


def test_a_partial_is_revised_early_where_the_final_changed_a_word_before_its_last():
    final = "x h b a c five"
    assert not bench.revised_before_last_word("x h b a c fi", final)  # a prefix
    assert not bench.revised_before_last_word("x h b c", final)  # only its last, growing word differs
    assert not bench.revised_before_last_word("", final)
    assert bench.revised_before_last_word("x h b c five", final)  # "c" where the final has "a"
    assert bench.revised_before_last_word("sixty four seventy", "six six four seventy")


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


positions = load_script("scripts/error_positions.py", "error_positions")


def test_errors_are_charged_to_the_reference_words_they_touch():
    assert positions.errors_by_position("may second nineteen", "may second nineteen") == [0, 0, 0]
    assert positions.errors_by_position("may second nineteen", "o second nineteen") == [1, 0, 0]
    assert positions.errors_by_position("may second nineteen", "second nineteen") == [1, 0, 0]
    # jiwer aligns this as "n" inserted before "may", then "six n" for "may second".
    assert positions.errors_by_position("may second nineteen", "n six n nineteen") == [2, 1, 0]
    assert positions.errors_by_position("enter two", "enter two ten") == [0, 1]  # an insertion after the end: the last word
    assert positions.errors_by_position("enter two", "") == [1, 1]


def _script(name: str):
    return load_script(f"scripts/{name}.py", name)


def test_set_frontend_changes_the_options_and_keeps_the_weights(tmp_path, monkeypatch, tone):
    import torch

    from speechrnn.features import FrontendConfig
    from speechrnn.model import ModelConfig, SpeechModel, load_model, save_model

    set_frontend = _script("set_frontend")
    torch.manual_seed(0)
    frontend = FrontendConfig(level_decay_db=10.0)
    model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, bidirectional=False, frontend=frontend)).eval()
    save_model(tmp_path / "a.pt", model, metadata={"epoch": 3})
    monkeypatch.setattr("sys.argv", ["set_frontend.py", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "level_start_db=60", "level_start_lead_db=40"])
    set_frontend.main()
    changed = load_model(tmp_path / "b.pt")
    assert changed.config == dataclasses.replace(model.config, frontend=dataclasses.replace(frontend, level_start_db=60, level_start_lead_db=40))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(changed.state_dict()[key], value, atol=0, rtol=0)
    assert changed.metadata["epoch"] == 3 and changed.metadata["frontend_changed"] == {"level_start_db": 60, "level_start_lead_db": 40}
    wave = torch.from_numpy(tone)[None]
    n = torch.tensor([wave.shape[1]])
    assert not torch.allclose(changed.features(wave, n)[0], model.features(wave, n)[0])  # the start level decides the tone's start
    with pytest.raises(ValueError, match="level_start_db"):
        set_frontend.with_frontend(model, level_start_lead_db=40)


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_set_frontend_starts_a_running_mean_from_the_models_statistics(kind, tone):
    """Turning on running_cmn_frames: the prior is the log-mel mean behind the normalisation
    mean, and the new model reads a signal's first frame as the old one did."""
    import torch

    from speechrnn.features import FrontendConfig
    from speechrnn.model import ModelConfig, SpeechModel

    set_frontend = _script("set_frontend")
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, bidirectional=False, frontend=FrontendConfig(kind=kind, level_decay_db=10.0))).eval()
    frontend = model.frontend
    wave = torch.from_numpy(tone)[None]
    log_mel = frontend.log_mel(wave)
    stats = frontend.transform(log_mel[0])
    frontend.set_cmvn(stats.mean(0), stats.std(0))
    changed = set_frontend.with_frontend(model, running_cmn_frames=100.0)
    n = torch.tensor([wave.shape[1]])
    before, after = model.features(wave, n)[0], changed.features(wave, n)[0]
    # The first frame's running mean is the prior moved 1/101 of the way to that frame: it
    # reads as the old model read that frame moved 1/101 of the way to the prior.
    first = log_mel[0, 0]
    expected = frontend.normalize(frontend.transform(first - (first - changed.frontend.cmn_prior) / 101))
    torch.testing.assert_close(after[0, 0], expected, atol=1e-4, rtol=1e-4)
    if kind == "logmel":
        torch.testing.assert_close(changed.frontend.cmn_prior, frontend.cmvn_mean)
        torch.testing.assert_close(changed.frontend.cmvn_mean, torch.zeros_like(frontend.cmvn_mean))
    assert not torch.allclose(after, before)
    with pytest.raises(ValueError, match="utterance_cmn"):
        set_frontend.with_frontend(SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, frontend=FrontendConfig(utterance_cmn=True))), utterance_cmn=False, running_cmn_frames=100.0)


def test_widen_model_writes_the_wider_model_that_reads_the_same(tmp_path, monkeypatch, capsys):
    import torch

    from speechrnn.model import ModelConfig, SpeechModel, load_model, save_model

    widen = _script("widen_model")
    torch.manual_seed(0)
    model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, bidirectional=False, lookahead=2)).eval()
    with torch.no_grad():
        model.lookahead.weight.normal_()  # a trained row convolution, not the identity it starts as
    save_model(tmp_path / "a.pt", model, metadata={"epoch": 3})
    monkeypatch.setattr("sys.argv", ["widen_model.py", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--lookahead", "4", "--input-lookahead", "2"])
    widen.main()
    wide = load_model(tmp_path / "b.pt")
    assert (wide.config.lookahead, wide.config.input_lookahead, wide.metadata["epoch"]) == (4, 2, 3)
    feats, lens = model.features(torch.randn(1, 8000) * 0.1, torch.tensor([8000]))
    with torch.no_grad():
        torch.testing.assert_close(wide(feats, lens)[0], model(feats, lens)[0])
    assert "input look-ahead 2 frames" in capsys.readouterr().out
    # More units (a bidirectional model too): the same outputs, more parameters.
    save_model(tmp_path / "bi.pt", SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=2)))
    monkeypatch.setattr("sys.argv", ["widen_model.py", str(tmp_path / "bi.pt"), str(tmp_path / "bi24.pt"), "--hidden", "24"])
    widen.main()
    bi, bi24 = load_model(tmp_path / "bi.pt"), load_model(tmp_path / "bi24.pt")
    assert (bi24.config.n_hidden, bi24.config.n_proj) == (24, 24)
    with torch.no_grad():
        torch.testing.assert_close(bi24(feats, lens)[0], bi(feats, lens)[0])
    assert "24 units, projection 24," in capsys.readouterr().out
    # Narrower than the model, or a bidirectional model's look-ahead: an error naming the file, nothing written.
    monkeypatch.setattr("sys.argv", ["widen_model.py", str(tmp_path / "b.pt"), str(tmp_path / "c.pt"), "--lookahead", "3"])
    with pytest.raises(SystemExit):
        widen.main()
    save_model(tmp_path / "bi.pt", SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1)))
    monkeypatch.setattr("sys.argv", ["widen_model.py", str(tmp_path / "bi.pt"), str(tmp_path / "c.pt"), "--lookahead", "3"])
    with pytest.raises(SystemExit):
        widen.main()
    monkeypatch.setattr("sys.argv", ["widen_model.py", str(tmp_path / "missing.pt"), str(tmp_path / "c.pt")])
    with pytest.raises(SystemExit):  # a missing model: the error, not a traceback
        widen.main()
    errors = capsys.readouterr().err
    assert "b.pt: a look-ahead of 3 frames" in errors and "bi.pt: a bidirectional model" in errors and "missing.pt" in errors
    assert not (tmp_path / "c.pt").exists()


def test_average_models_writes_the_mean_of_the_weights_and_the_settings_asked_for(tmp_path, monkeypatch, capsys):
    import json

    import torch

    from speechrnn.decoding import BeamSearchConfig, read_settings
    from speechrnn.model import ModelConfig, SpeechModel, load_model, save_model

    average = _script("average_models")
    config = ModelConfig(n_hidden=16, n_proj=16, n_layers=1)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(SpeechModel(config).eval())
        save_model(tmp_path / f"m{seed}.pt", models[-1], metadata={"name": "offline", "dev_wer": 10.0 + seed, "epoch": seed})
    assert not torch.equal(models[0].head.weight, models[1].head.weight)  # so the mean below can fail
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    (lm_dir / "x.arpa").write_text("")
    (lm_dir / "x.lexicon.txt").write_text("")
    (tmp_path / "m0.lm.json").write_text(json.dumps({"lm": "lm/x.arpa", "lexicon": "lm/x.lexicon.txt", "lm_weight": 1.5, "word_score": 2.0, "beam_size": 16, "tuned": {"dev_wer": 7.0}}))
    out_dir = tmp_path / "soups"
    monkeypatch.setattr("sys.argv", ["average_models.py", *(str(tmp_path / f"m{i}.pt") for i in range(3)), "-o", str(out_dir / "soup.pt"), "--settings-from", str(tmp_path / "m0.pt")])
    average.main()
    soup = load_model(out_dir / "soup.pt")
    for key, value in soup.state_dict().items():
        torch.testing.assert_close(value, sum(m.state_dict()[key] for m in models) / 3, msg=key)
    digests = [hashlib.sha256((tmp_path / f"m{i}.pt").read_bytes()).hexdigest() for i in range(3)]
    assert soup.metadata == {"name": "offline", "averaged_from": [str(tmp_path / f"m{i}.pt") for i in range(3)], "blended_sha256": digests}  # the first's figures dropped
    settings = read_settings(out_dir / "soup.lm.json")
    assert (settings["lm"], settings["lm_weight"], settings["beam_size"], "tuned" in settings) == ("../lm/x.arpa", 1.5, 16, False)
    assert BeamSearchConfig.from_dict(settings, base=out_dir).lexicon == str(out_dir / "../lm/x.lexicon.txt")
    assert "the mean of 3 models' weights" in capsys.readouterr().out
    # --weights: three parts of the first to one of the second.
    monkeypatch.setattr("sys.argv", ["average_models.py", str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt"), "--weights", "3", "1", "-o", str(out_dir / "weighted.pt")])
    average.main()
    weighted = load_model(out_dir / "weighted.pt")
    for key, value in weighted.state_dict().items():
        torch.testing.assert_close(value, 0.75 * models[0].state_dict()[key] + 0.25 * models[1].state_dict()[key], msg=key)
    assert weighted.metadata["average_weights"] == [0.75, 0.25]
    assert "a weighted mean of 2 models' weights (0.75, 0.25)" in capsys.readouterr().out
    # A soup of that soup says only what it was made of: the weights of the soup it started from
    # are not carried over to an even mean, and the digests tell its file from another of its name.
    monkeypatch.setattr("sys.argv", ["average_models.py", str(out_dir / "weighted.pt"), str(tmp_path / "m2.pt"), "-o", str(out_dir / "again.pt")])
    average.main()
    again = load_model(out_dir / "again.pt").metadata
    assert "average_weights" not in again and again["blended_sha256"] == [hashlib.sha256((out_dir / "weighted.pt").read_bytes()).hexdigest(), digests[2]]
    # One model, another config, --settings-from a model without settings, or weights that do not
    # fit: an error, nothing written.
    save_model(tmp_path / "other.pt", SpeechModel(ModelConfig(n_hidden=8, n_proj=8, n_layers=1)))
    pair = [str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt")]
    for argv in ([str(tmp_path / "m0.pt")], [str(tmp_path / "m0.pt"), str(tmp_path / "other.pt")], [str(tmp_path / "m1.pt"), str(tmp_path / "m2.pt"), "--settings-from", str(tmp_path / "m1.pt")], [*pair, "--weights", "1"], [*pair, "--weights", "1", "-1"]):
        monkeypatch.setattr("sys.argv", ["average_models.py", *argv, "-o", str(tmp_path / "bad.pt")])
        with pytest.raises(SystemExit):
            average.main()
    errors = capsys.readouterr().err
    assert "two model files or more" in errors and "other.pt: its model config differs" in errors
    assert f"--settings-from {tmp_path / 'm1.pt'}: it has no decoding settings file" in errors
    assert "1 weights for 2 model files" in errors and "weights must be non-negative" in errors
    assert not (tmp_path / "bad.pt").exists()


def test_level_stats_reads_the_loudest_and_the_first_frame(tone):
    import torch

    from speechrnn.features import Frontend, FrontendConfig

    level_stats = _script("level_stats")
    wave = np.concatenate([1e-3 * np.ones(4000, dtype=np.float32), tone]).astype(np.float32)
    levels = Frontend(FrontendConfig()).frame_level_db(torch.from_numpy(wave)[None])[0]
    loudest, first = level_stats.loudest_and_first(Frontend(FrontendConfig()), torch.from_numpy(wave))
    assert (loudest, first) == (float(levels.max()), float(levels[0]))
    assert loudest - first > 20  # the tone well above the quiet lead-in


def test_bench_train_variants_are_the_bundled_configs_with_the_convolution_swapped():
    import torch

    from speechrnn.model import load_model

    bench_train = _script("bench_train")
    for name, base, conv in (("offline", "offline", 16), ("offline-conv0", "offline", 0), ("streaming-conv16", "streaming", 16)):
        model, shipped = bench_train.variant_model(name), load_model(base)
        assert model.config == dataclasses.replace(shipped.config, conv_channels=conv) and model.training
        assert torch.equal(model.frontend.cmvn_mean, shipped.frontend.cmvn_mean) and torch.equal(model.frontend.cmvn_std, shipped.frontend.cmvn_std)


def test_bench_train_times_the_chosen_training_recurrence(monkeypatch, tone):
    """``--gru speechrnn`` trains through speechrnn.cpu_gru's layer, ``--gru torch`` through
    PyTorch's GRU (the two compute the same: tests/test_cpu_gru.py)."""
    from types import SimpleNamespace

    import torch

    import speechrnn.model as model_module
    from speechrnn.model import ModelConfig, SpeechModel

    bench_train = _script("bench_train")
    calls = []
    for name in ("gru_layer", "torch_gru_layer"):
        original = getattr(model_module, name)
        monkeypatch.setattr(model_module, name, lambda x, weights, name=name, original=original: calls.append(name) or original(x, weights))
    torch.manual_seed(0)
    initial = SpeechModel(ModelConfig(n_hidden=8, n_proj=8, n_layers=2)).train()  # the intermediate loss needs 2 layers
    waves = [[torch.from_numpy(tone[:8000])] * 2] * 2
    utterances = [[SimpleNamespace(text="a b")] * 2] * 2
    for gru, layer in (("speechrnn", "gru_layer"), ("torch", "torch_gru_layer")):
        calls.clear()
        assert len(bench_train.time_steps(initial, gru, waves, utterances)) == 1  # the first step is not timed
        assert set(calls) == {layer}
    # --teacher: each step also reads the batch with the teacher (the distillation loss needs it).
    read = []
    original_read = bench_train.teacher_log_probs
    monkeypatch.setattr(bench_train, "teacher_log_probs", lambda *args: read.append(args[3]) or original_read(*args))
    teacher = SpeechModel(ModelConfig(n_hidden=8, n_proj=8, n_layers=1)).eval()
    assert len(bench_train.time_steps(initial, "speechrnn", waves, utterances, teacher)) == 1
    assert read == [3, 3]  # both steps, the recipes' shift


def test_spike_lag_counts_frames_between_the_characters_of_models_that_agree(monkeypatch, tone):
    import torch

    from speechrnn.model import ModelConfig, SpeechModel

    spike_lag = _script("spike_lag")
    model = SpeechModel(ModelConfig(n_hidden=8, n_proj=8, n_layers=1)).eval()
    a = model.tokenizer.encode("a")[0]
    with torch.no_grad():  # every frame reads "a": one character, at the first frame
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[a] = 5.0
    assert spike_lag.character_frames(model, torch.from_numpy(tone)) == [(0, a)]

    paths = {("student", 0): [(5, 3), (9, 4)], ("teacher", 0): [(2, 3), (7, 4)], ("student", 1): [(4, 3)], ("teacher", 1): [(1, 5)]}
    monkeypatch.setattr(spike_lag, "character_frames", lambda who, wave: paths[(who, wave)])
    assert spike_lag.lags("student", "teacher", [0, 1]) == ([3, 2], 1)  # the second utterance's spellings differ


def test_the_machine_line_names_the_cpu_and_its_avx512(tmp_path, monkeypatch):
    from speechrnn import machine

    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    cpuinfo = tmp_path / "cpuinfo"
    processor = "processor\t: {}\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 {}\n\n"
    cpuinfo.write_text(processor.format(0, "avx512f avx512bw") + processor.format(1, "avx512f avx512bw"))
    assert machine.describe(cpuinfo) == "x86_64, 2 cores, AMD EPYC 9R14, AVX-512"
    cpuinfo.write_text(processor.format(0, "avx512bw"))  # (not the foundation set)
    assert machine.describe(cpuinfo) == "x86_64, 2 cores, AMD EPYC 9R14"
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    assert machine.describe(tmp_path / "missing") == "x86_64, 2 cores"


def test_compare_models_counts_each_sides_errors_with_its_own_second_pass(an4_root, monkeypatch, capsys):
    """scripts/compare_models.py: each side's per-utterance word errors sum to the WER that
    `evaluate` reads for the same decoding, second pass included (--rescore-a), and the paired
    interval holds the difference it reports."""
    import json
    import sys

    from speechrnn.data import an4_dev_split, load_waves
    from speechrnn.decoding import beam_search_for
    from speechrnn.evaluate import evaluate
    from speechrnn.model import load_model

    compare = _script("compare_models")
    utterances = an4_dev_split(an4_root)[:24]
    waves, references = load_waves(utterances), [u.text for u in utterances]
    model = load_model("streaming")
    words = sum(len(text.split()) for text in references)
    for rescore, weight in (("none", None), ("streaming-partner", 1.0)):
        loaded, search = compare.side("streaming", "default", rescore, weight)
        second_pass = compare.second_pass(search)
        if weight is None:
            assert second_pass is None
        else:
            assert (second_pass["model"], second_pass["weight"]) == (rescore, weight)
        errors = compare.word_errors(loaded, search, waves, references)
        expected = evaluate(model, utterances, search=beam_search_for(model, rescore=rescore, rescore_weight=weight)).wer
        assert 100 * errors.sum() / words == pytest.approx(expected, abs=0.01), rescore
    monkeypatch.setattr(compare, "an4_eval_split", lambda root, split: utterances)
    argv = ["compare_models.py", "streaming", "streaming", "--lm", "default", "--rescore-a", "streaming-partner", "--weight-a", "1", "--resamples", "200"]
    monkeypatch.setattr(sys, "argv", argv)
    compare.main()
    row = json.loads(capsys.readouterr().out)
    assert row["utterances"] == 24 and row["rescore_b"] is None
    assert (row["rescore_a"]["model"], row["rescore_a"]["weight"]) == ("streaming-partner", 1.0)
    assert row["a_minus_b"] == pytest.approx(row["wer_a"] - row["wer_b"], abs=0.02)
    assert row["a_minus_b_95"][0] <= row["a_minus_b"] <= row["a_minus_b_95"][1]
    monkeypatch.setattr(sys, "argv", argv[:3] + ["--lm", "none", "--rescore-a", "streaming-partner"])
    with pytest.raises(SystemExit) as refused:  # a second pass needs a beam search's n best
        compare.main()
    assert refused.value.code == 2 and "give --lm default" in capsys.readouterr().err


def test_partner_grid_reads_each_partner_alone_as_the_second_pass_does(an4_root, monkeypatch, capsys):
    """scripts/partner_grid.py: the first pass and each partner alone, at the weight dev chose,
    read the WER `evaluate` reads with that second pass; the partners together choose among a
    grid that holds each alone, so dev can only read as well or better."""
    import json
    import sys

    from speechrnn.data import an4_dev_split, an4_utterances
    from speechrnn.decoding import beam_search_for
    from speechrnn.evaluate import evaluate
    from speechrnn.model import load_model

    grid = _script("partner_grid")
    sets = {"dev": an4_dev_split(an4_root)[:16], "test": an4_utterances(an4_root, "test")[:16]}
    monkeypatch.setattr(grid, "an4_eval_split", lambda root, split: sets[split])
    monkeypatch.setattr(sys, "argv", ["partner_grid.py", "streaming", "streaming-partner", "offline", "--weights", "0.5", "1", "2"])
    grid.main()
    row = json.loads(capsys.readouterr().out)
    model = load_model("streaming")
    for name, utterances in sets.items():
        assert row["first_pass"][name]["wer"] == pytest.approx(evaluate(model, utterances, search=beam_search_for(model)).wer, abs=0.01)
        for alone in row["alone"]:
            search = beam_search_for(model, rescore=alone["partner"], rescore_weight=alone["weight"]) if alone["weight"] else beam_search_for(model)
            assert alone[name]["wer"] == pytest.approx(evaluate(model, utterances, search=search).wer, abs=0.01), alone
    assert [alone["partner"] for alone in row["alone"]] == ["streaming-partner", "offline"]
    assert row["weights_tried"] == [0.0, 0.5, 1.0, 2.0]
    assert row["together"]["dev"]["wer"] <= min(alone["dev"]["wer"] for alone in row["alone"])
    for name in sets:  # no re-ranking of the n best reads below the best of them
        assert row["oracle_wer"][name] <= min(row["together"][name]["wer"], row["first_pass"][name]["wer"], *(a[name]["wer"] for a in row["alone"]))
    assert row["oracle_wer"]["dev"] < row["first_pass"]["dev"]["wer"]  # (these utterances): the n best hold better transcripts
    assert 1 < row["mean_distinct"]["dev"] <= 16


def test_hot_word_scores_count_each_occurrence_once_and_extra_ones_as_false_alarms():
    hot = _script("bench_hot_words")
    references = ["enter sixty two", "sixty sixty", "yes", "rubout a"]
    texts = ["enter sixty two", "sixty", "yes sixty", "rubout a"]
    result = hot.scores(references, texts, {"sixty", "rubout"})
    assert result["recall"] == "3/4"  # the second "sixty" of the second utterance is missed
    assert result["false_alarms"] == 1  # "sixty" where "yes" alone was said
    assert result["wer_with_words"] == pytest.approx(100 * 1 / 7, abs=0.01)  # one deletion in 7 words of 3 utterances
    assert result["wer_all"] == pytest.approx(100 * 2 / 8, abs=0.01)


def test_channel_bench_substitution_removes_a_fixed_response_and_keeps_the_global_mean():
    import torch

    from speechrnn.features import Frontend, FrontendConfig, num_frames

    _script("bench_robustness")  # (bench_channel imports it as a sibling module)
    channel = _script("bench_channel")
    frontend = Frontend(FrontendConfig(kind="logmel"))
    frontend.set_cmvn(torch.linspace(-3.0, 1.0, frontend.config.n_features), torch.ones(frontend.config.n_features))
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([16000, 16000])
    feat_lens = num_frames(lens, frontend.config)
    log_mel = frontend.log_mel(torch.stack([wave, 4 * wave]))  # 12 dB more: a fixed response
    assert not torch.allclose(log_mel[0], log_mel[1], atol=1.0)
    substituted = channel.substitute_utterance_mean(frontend, log_mel, feat_lens)
    torch.testing.assert_close(substituted[0], substituted[1], atol=1e-3, rtol=0)
    torch.testing.assert_close(substituted[0, : int(feat_lens[0])].mean(0), frontend.cmvn_mean, atol=1e-4, rtol=0)
    # In a model, as the bench reads it: the frontend calls it as its own method.
    from speechrnn.model import ModelConfig, SpeechModel
    from speechrnn.transcribe import recognize

    model = channel.with_mean_substituted(SpeechModel(ModelConfig(frontend=FrontendConfig(kind="logmel"), n_hidden=8, n_proj=8, n_layers=1)).eval())
    model.frontend.set_cmvn(frontend.cmvn_mean, frontend.cmvn_std)
    assert recognize(model, [wave])[0].text == recognize(model, [4 * wave])[0].text


def test_the_robustness_bench_lead_in_puts_faint_noise_before_each_utterance(tmp_path):
    """The `lead-in` condition: EndpointConfig.no_speech seconds (the longest a live stream
    leaves before an utterance) of -60 dBFS white noise, then the utterance unchanged."""
    import torch

    from speechrnn.streaming import EndpointConfig

    bench = _script("bench_robustness")
    waves = [torch.randn(8000, generator=torch.Generator().manual_seed(i)) * 0.1 for i in range(2)]
    made = bench.conditions(waves, ["a", "b"], tmp_path, wanted=lambda name: name == "lead-in")
    assert list(made) == ["lead-in"]
    lead = round(EndpointConfig().no_speech * 16000)
    for wave, led in zip(waves, made["lead-in"]):
        assert led.shape[0] == lead + wave.shape[0] and torch.equal(led[lead:], wave)
        assert 0.9e-3 < float(led[:lead].pow(2).mean().sqrt()) < 1.1e-3


def test_the_robustness_bench_hum_conditions_add_the_steady_hum_at_three_levels(tmp_path):
    import torch

    from speechrnn.data import steady_hum

    bench = _script("bench_robustness")
    waves = [torch.randn(20000, generator=torch.Generator().manual_seed(i)) * 0.1 for i in range(2)]
    made = bench.conditions(waves, ["a", "b"], tmp_path, wanted=lambda name: name.startswith("hum"))
    assert list(made) == [f"hum (50 Hz, {db} dBFS)" for db in (-40, -50, -60)]
    for db, hummed in zip((-40, -50, -60), made.values()):
        for wave, with_hum in zip(waves, hummed):
            added = with_hum - wave
            assert torch.allclose(added, steady_hum(20000, 50.0, 10 ** (db / 20)), atol=1e-7)
        assert float(steady_hum(16000, 50.0, 10 ** (db / 20))[:320].max()) > 10 ** (db / 20)  # (the fundamental at that amplitude, its multiples on top)


def test_the_hum_bench_counts_warnings_and_their_frequency():
    hum_bench = _script("bench_hum")
    t = np.arange(32000) / 16000
    noise = 0.003 * np.random.default_rng(0).standard_normal(t.size)
    sets = {
        "clean": [noise, noise[:8000]],  # (the short one is not read)
        "hum": [noise + 0.01 * np.sin(2 * np.pi * 60 * t), noise + 0.01 * np.sin(2 * np.pi * 50 * t), noise],
    }
    counts = hum_bench.tally(sets, {"clean": None, "hum": 60.0})
    assert counts["clean"] == {"read": 1, "warned": 0, "warned_percent": 0.0}
    assert counts["hum"] == {"read": 3, "warned": 2, "warned_percent": 66.7, "right_frequency": 1}
