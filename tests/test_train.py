from __future__ import annotations

import csv
import dataclasses
import math
import random
from pathlib import Path

import pytest
import torch

from speechrnn.audio import AudioError
from speechrnn.data import AugmentConfig, Utterance, length_batches, load_waves, mask_frequencies, mask_times, pad_waves, perturb_wave, speaker_split, vtlp_filterbank
from speechrnn.features import Frontend, FrontendConfig
from speechrnn.model import ModelConfig, SpeechModel, load_model, save_model
from speechrnn.train import TrainConfig, batch_features, compute_cmvn, distillation_loss, lr_factor, statistics_subset, teacher_log_probs, train

TINY = ModelConfig(n_hidden=32, n_proj=32, n_layers=1, dropout=0.1)


@pytest.fixture
def tiny_set(speech_dir):
    folder, phrases = speech_dir
    return [Utterance(str(folder / f"{name}.wav"), text, 0.0, name) for name, text in phrases.items()]


@pytest.mark.parametrize("augment", [AugmentConfig(), AugmentConfig(concat_prob=0.5)], ids=["single", "joined"])
def test_resume_after_a_kill_reaches_the_same_weights(tiny_set, tmp_path, augment):
    config = TrainConfig(epochs=3, batch_size=2, warmup_steps=2, threads=1)
    train(TINY, tiny_set, tiny_set[:2], tmp_path / "straight", config, augment)
    # The same run killed after its first epoch, then resumed.
    _train_epochs(tiny_set, tmp_path / "resumed", config, augment, stop_after=1)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(TINY, tiny_set, tiny_set[:2], tmp_path / "resumed", config, augment, resume=True)
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert straight["epoch"] == resumed["epoch"] == 3
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert (tmp_path / "resumed" / "curve.png").stat().st_size > 1000
    load_model(tmp_path / "resumed" / "best.pt")
    # Resumed with other options, other augmentation or other data: refused, naming what changed.
    with pytest.raises(ValueError, match=r"checkpoint.pt: was written with other options \(epochs 3 in the checkpoint, 4 now; lr "):
        train(TINY, tiny_set, tiny_set[:2], tmp_path / "resumed", dataclasses.replace(config, epochs=4, lr=1e-3), augment, resume=True)
    with pytest.raises(ValueError, match=r"other options \(augment.noise_prob 0.3 in the checkpoint, 0.5 now\)"):
        train(TINY, tiny_set, tiny_set[:2], tmp_path / "resumed", config, dataclasses.replace(augment, noise_prob=0.5), resume=True)
    with pytest.raises(ValueError, match=rf"training on other data \({len(tiny_set)} utterances, .* now {len(tiny_set) - 1}, "):
        train(TINY, tiny_set[1:], tiny_set[:2], tmp_path / "resumed", config, augment, resume=True)


def test_train_config_refuses_what_cannot_train():
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"threads": 0}, {"lr": 0.0}, {"warmup_steps": -1}, {"grad_clip": 0.0}, {"final_lr_ratio": 2.0}):
        with pytest.raises(ValueError, match="training needs"):
            TrainConfig(**bad)


def test_fine_tuning_starts_from_the_given_model(tiny_set, tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    first = train(TINY, tiny_set, tiny_set[:2], tmp_path / "first", config, None)
    start = load_model(first)
    # With a learning rate of ~0 the fine-tuned weights stay those of the starting model.
    still = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1, lr=1e-12, weight_decay=0.0)
    tuned = load_model(train(TINY, tiny_set[:2], tiny_set[:2], tmp_path / "tuned", still, None, init_from=first))
    for key, value in start.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)
    fresh = load_model(train(TINY, tiny_set[:2], tiny_set[:2], tmp_path / "fresh", still, None))
    assert not torch.equal(fresh.head.weight, start.head.weight)  # the check above can fail
    with pytest.raises(ValueError, match="model config differs"):
        train(ModelConfig(n_hidden=16, n_proj=16, n_layers=1), tiny_set, tiny_set[:2], tmp_path / "other", config, None, init_from=first)


def test_fine_tuning_widens_the_look_aheads_with_new_weights_at_zero(tiny_set, tmp_path):
    narrow = dataclasses.replace(TINY, bidirectional=False, lookahead=1)
    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    first = train(narrow, tiny_set, tiny_set[:2], tmp_path / "first", config, None)
    start = load_model(first)
    still = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1, lr=1e-12, weight_decay=0.0)
    wide = dataclasses.replace(narrow, lookahead=3)
    tuned = load_model(train(wide, tiny_set[:2], tiny_set[:2], tmp_path / "tuned", still, None, init_from=first))
    assert tuned.config.lookahead == 3
    for key, value in start.state_dict().items():
        if key != "lookahead.weight":
            torch.testing.assert_close(tuned.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)
    taps = tuned.lookahead.weight[:, 0]
    torch.testing.assert_close(taps[:, :2], start.lookahead.weight[:, 0], atol=1e-6, rtol=0)
    assert taps[:, 2:].abs().max() < 1e-6
    with pytest.raises(ValueError, match="model config differs"):  # a shorter look-ahead is not a fine-tune
        train(dataclasses.replace(narrow, lookahead=0), tiny_set, tiny_set[:2], tmp_path / "shorter", config, None, init_from=first)
    # An input look-ahead too: the projection's weights for the new frames start at zero.
    tuned = load_model(train(dataclasses.replace(narrow, input_lookahead=2), tiny_set[:2], tiny_set[:2], tmp_path / "input", still, None, init_from=first))
    assert tuned.config.input_lookahead == 2
    n_old = start.proj[0].in_features
    torch.testing.assert_close(tuned.proj[0].weight[:, :n_old], start.proj[0].weight, atol=1e-6, rtol=0)
    assert tuned.proj[0].weight[:, n_old:].abs().max() < 1e-6


def test_fine_tuning_with_more_units_starts_from_the_model_widened(tiny_set, tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    first = train(TINY, tiny_set, tiny_set[:2], tmp_path / "first", config, None)
    start = load_model(first)
    still = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1, lr=1e-12, weight_decay=0.0)
    wide_config = dataclasses.replace(TINY, n_hidden=TINY.n_hidden + 4, n_proj=TINY.n_proj + 4)
    tuned = load_model(train(wide_config, tiny_set[:2], tiny_set[:2], tmp_path / "tuned", still, None, init_from=first))
    assert (tuned.config.n_hidden, tuned.config.n_proj) == (wide_config.n_hidden, wide_config.n_proj)
    feats, lens = start.features(torch.randn(1, 8000) * 0.1, torch.tensor([8000]))
    with torch.no_grad():
        torch.testing.assert_close(tuned(feats, lens)[0], start(feats, lens)[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="model config differs"):  # fewer units are not a fine-tune
        train(dataclasses.replace(TINY, n_hidden=TINY.n_hidden - 1), tiny_set, tiny_set[:2], tmp_path / "fewer", config, None, init_from=first)


def test_intermediate_ctc_trains_other_weights_into_the_same_model_file(tiny_set, tmp_path):
    two_layers = dataclasses.replace(TINY, n_layers=2)
    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    plain = load_model(train(two_layers, tiny_set, tiny_set[:2], tmp_path / "plain", config, None))
    inter_config = dataclasses.replace(config, inter_ctc_weight=0.3, inter_ctc_layer=1)
    inter = load_model(train(two_layers, tiny_set, tiny_set[:2], tmp_path / "inter", inter_config, None))
    assert inter.config == plain.config and inter.state_dict().keys() == plain.state_dict().keys()
    assert not torch.equal(inter.rnn.weight_ih_l0, plain.rnn.weight_ih_l0)  # the extra loss reached the lower layer
    assert not torch.equal(inter.head.weight, plain.head.weight)
    for weight, layer in ((1.0, 1), (0.3, 2), (0.3, 0)):
        with pytest.raises(ValueError, match="inter_ctc_weight"):
            train(two_layers, tiny_set, tiny_set[:2], tmp_path / "bad", dataclasses.replace(config, inter_ctc_weight=weight, inter_ctc_layer=layer), None)


def test_distillation_loss_is_the_kl_divergence_over_valid_frames_and_the_teacher_is_delayed(tiny_set, tmp_path):
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 6, 5).log_softmax(-1), torch.randn(2, 6, 5).log_softmax(-1)
    lens = torch.tensor([6, 4])
    by_hand = [float((teacher[b, t].exp() * (teacher[b, t] - student[b, t])).sum()) for b in range(2) for t in range(int(lens[b]))]
    assert distillation_loss(student, teacher, lens).item() == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    assert distillation_loss(teacher, teacher, lens).item() == pytest.approx(0.0, abs=1e-6)
    # Frames past a row's length do not count.
    changed = student.clone()
    changed[1, 4:] = torch.randn(2, 5).log_softmax(-1)
    assert distillation_loss(changed, teacher, lens).item() == pytest.approx(distillation_loss(student, teacher, lens).item(), rel=1e-6)

    model = load_model(train(TINY, tiny_set, tiny_set[:2], tmp_path, TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1), None))
    padded, lens = pad_waves(load_waves(tiny_set))
    now, delayed = teacher_log_probs(model, padded, lens, 0), teacher_log_probs(model, padded, lens, 2)
    assert delayed.shape == now.shape
    torch.testing.assert_close(delayed[:, 2:], now[:, :-2])
    torch.testing.assert_close(delayed[:, :2], now[:, :1].expand(-1, 2, -1))


def test_distillation_pulls_the_student_towards_its_teacher(tiny_set, tmp_path):
    config = TrainConfig(epochs=4, batch_size=2, warmup_steps=2, threads=1, seed=1, lr=0.03)
    # A teacher unlike anything CTC training leads to: a barely trained model that favours "e" everywhere.
    teacher = load_model(train(TINY, tiny_set, tiny_set[:2], tmp_path / "teacher", dataclasses.replace(config, epochs=1, lr=1e-3), None))
    with torch.no_grad():
        teacher.head.bias[teacher.tokenizer.encode("e")[0]] += 4.0
    teacher_path = tmp_path / "teacher.pt"
    save_model(teacher_path, teacher)
    plain = load_model(train(TINY, tiny_set, tiny_set[:2], tmp_path / "plain", config, None))
    distilled_config = dataclasses.replace(config, distill_weight=0.9, distill_shift=1)
    distilled = load_model(train(TINY, tiny_set, tiny_set[:2], tmp_path / "distilled", distilled_config, None, teacher=teacher_path))
    assert distilled.state_dict().keys() == plain.state_dict().keys()
    assert distilled.metadata["distilled_from"] == str(teacher_path) and "distilled_from" not in plain.metadata
    padded, lens = pad_waves(load_waves(tiny_set))
    targets = teacher_log_probs(teacher, padded, lens, 1)

    def divergence(student):
        with torch.no_grad():
            log_probs, out_lens = student(*student.features(padded, lens))
        return distillation_loss(log_probs, targets, out_lens).item()

    assert divergence(distilled) < 0.5 * divergence(plain)
    for weight, kept in ((0.5, None), (0.0, teacher_path), (1.0, teacher_path)):
        with pytest.raises(ValueError, match="distillation needs a teacher"):
            train(TINY, tiny_set, tiny_set[:2], tmp_path / "bad", dataclasses.replace(config, distill_weight=weight), None, teacher=kept)
    with pytest.raises(ValueError, match="a teacher needs the student's output frames"):
        train(dataclasses.replace(TINY, frame_stack=2), tiny_set, tiny_set[:2], tmp_path / "bad", distilled_config, None, teacher=teacher_path)


def test_keep_last_makes_the_last_epoch_the_model_file(tiny_set, tmp_path):
    config = TrainConfig(epochs=3, batch_size=2, warmup_steps=2, threads=1)
    path = train(TINY, tiny_set, tiny_set[:2], tmp_path, config, None)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    lowest = min(rows, key=lambda r: float(r["dev_wer"]))  # the first of equals, as training keeps it
    assert load_model(path).metadata["epoch"] == int(lowest["epoch"])
    # Resuming the finished run with keep="last" rewrites the model file from the last epoch.
    path = train(TINY, tiny_set, tiny_set[:2], tmp_path, config, None, resume=True, keep="last")
    model = load_model(path)
    assert model.metadata["epoch"] == 3 and model.metadata["dev_wer"] == float(rows[-1]["dev_wer"])
    last = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, last[key]), key
    with pytest.raises(ValueError, match="keep must be"):
        train(TINY, tiny_set, tiny_set[:2], tmp_path, config, None, keep="newest")


def test_averaging_keeps_the_mean_of_the_last_epochs_also_across_a_resume(tiny_set, tmp_path):
    config = TrainConfig(epochs=3, batch_size=2, warmup_steps=2, threads=1, average_epochs=2)
    _train_epochs(tiny_set, tmp_path, config, None, stop_after=2, keep="last")
    second = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    path = train(TINY, tiny_set, tiny_set[:2], tmp_path, config, None, resume=True, keep="last")
    third = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    model = load_model(path)
    assert model.metadata["averaged_epochs"] == 2 and model.metadata["epoch"] == 3
    changed = 0
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (second[key] + third[key]) / 2, msg=key)
            changed += not torch.equal(second[key], third[key])
    assert changed > 0  # the two epochs differ, so the mean is neither of them
    with pytest.raises(ValueError, match="average_epochs needs keep='last'"):
        train(TINY, tiny_set, tiny_set[:2], tmp_path / "best", config, None)


def _train_epochs(utterances, out_dir, config, augment, stop_after, keep="best"):
    """Run ``train`` but kill it (KeyboardInterrupt) once ``stop_after`` epochs are saved."""
    import speechrnn.train as train_module

    original = train_module.write_log

    def write_then_maybe_stop(folder, history):
        original(folder, history)
        if len(history) >= stop_after:
            raise KeyboardInterrupt

    train_module.write_log = write_then_maybe_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(TINY, utterances, utterances[:2], out_dir, config, augment, keep=keep)
    finally:
        train_module.write_log = original


def test_length_batches_cover_every_index_once_and_group_lengths():
    lengths = [random.Random(1).randint(1, 100) for _ in range(37)]
    batches = length_batches(lengths, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(37))
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert max(spans) < 50


def test_speaker_split_is_disjoint():
    utts = [Utterance(f"{s}{i}.wav", "x", 1.0, s) for s in "abcdefgh" for i in range(3)]
    train_set, dev = speaker_split(utts, 2, seed=0)
    assert {u.speaker for u in train_set}.isdisjoint({u.speaker for u in dev})
    assert len({u.speaker for u in dev}) == 2 and len(train_set) + len(dev) == len(utts)


def test_ddp_with_two_cpu_processes(tiny_set, tmp_path):
    """torchrun with two gloo processes trains and rank 0 writes the checkpoint; killed within
    an epoch, it resumes from the checkpoint there to the weights of an uninterrupted run."""
    import json
    import subprocess
    import sys

    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import faulthandler, json, os, sys\n"
        # (a rank that aborts prints every thread's Python stack: session 58 saw one abort
        # once at exit, after its run had finished, and never again in 25 reruns)
        "faulthandler.enable(all_threads=True)\n"
        "import speechrnn.train as train_module\n"
        "from speechrnn.data import Utterance\n"
        "from speechrnn.model import ModelConfig\n"
        "from speechrnn.train import TrainConfig, train\n"
        "utts = [Utterance(**u) for u in json.loads(sys.argv[2])]\n"
        "original = train_module.atomic_torch_save\n"
        "def save_then_maybe_die(state, path):\n"
        "    original(state, path)\n"
        "    if sys.argv[3] == 'kill' and state.get('partial', {}).get('epoch') == 2:\n"
        "        os._exit(1)\n"
        "train_module.atomic_torch_save = save_then_maybe_die\n"
        "config = ModelConfig(n_hidden=32, n_proj=32, n_layers=2, dropout=0.3)\n"
        "batch_size = len(utts) if sys.argv[3] == 'one-batch' else 1\n"
        "train(config, utts, utts[:2], sys.argv[1], TrainConfig(epochs=2, batch_size=batch_size, warmup_steps=1, threads=1), resume=sys.argv[3] == 'resume', checkpoint_steps=1)\n"
    )
    utts = json.dumps([u.__dict__ for u in tiny_set])

    def torchrun(out: str, mode: str):
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / out), utts, mode],
            capture_output=True, text=True, timeout=300,
        )

    result = torchrun("out", "straight")
    assert result.returncode == 0, result.stderr[-6000:]
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    load_model(tmp_path / "out" / "best.pt")
    assert torchrun("killed", "kill").returncode != 0
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert saved["partial"]["epoch"] == 2 and len(saved["partial"]["random"]) == 2
    result = torchrun("killed", "resume")
    assert result.returncode == 0, result.stderr[-6000:]
    resumed = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == 2 and "partial" not in resumed
    for key, value in state["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    # One batch for two processes: an error saying so, not epochs of no steps.
    result = torchrun("one", "one-batch")
    assert result.returncode != 0 and "are 1 batch an epoch, fewer than the 2 processes" in result.stderr
    assert not (tmp_path / "one" / "best.pt").exists()


@pytest.fixture
def tiny_set_16k(tiny_set, tmp_path):
    """The tiny set as 16 kHz files with their durations: lengths from durations are exact."""
    import soundfile as sf

    from speechrnn.audio import load_audio

    utterances = []
    for utt in tiny_set:
        path = tmp_path / "16k" / Path(utt.audio).name
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), load_audio(utt.audio), 16000)
        utterances.append(Utterance(str(path), utt.text, sf.info(str(path)).duration, utt.speaker))
    return utterances


@pytest.mark.parametrize("augment", [AugmentConfig(), AugmentConfig(concat_prob=0.5)], ids=["single", "joined"])
def test_reading_audio_from_disk_trains_the_same_weights_as_holding_it(tiny_set_16k, tmp_path, augment, monkeypatch):
    import speechrnn.train as train_module
    from speechrnn.data import DiskWaves

    reads = []

    class CountingDiskWaves(DiskWaves):
        def __getitem__(self, index):
            reads.append(index)
            return super().__getitem__(index)

    monkeypatch.setattr(train_module, "DiskWaves", CountingDiskWaves)
    config = TrainConfig(epochs=2, batch_size=2, warmup_steps=2, threads=1)
    train(TINY, tiny_set_16k, tiny_set_16k[:2], tmp_path / "memory", config, augment, preload=True)
    assert reads == []
    train(TINY, tiny_set_16k, tiny_set_16k[:2], tmp_path / "disk", config, augment, preload=False)
    # CMVN reads each utterance once, then each epoch reads every one again.
    assert sorted(reads) == sorted(list(range(len(tiny_set_16k))) * 3)
    memory = torch.load(tmp_path / "memory" / "checkpoint.pt", weights_only=True)
    disk = torch.load(tmp_path / "disk" / "checkpoint.pt", weights_only=True)
    assert memory["history"][-1]["train_loss"] == disk["history"][-1]["train_loss"]
    for key, value in memory["model"].items():
        assert torch.equal(value, disk["model"][key]), key


def test_an_unreadable_training_file_is_left_out_when_reading_from_disk(tiny_set_16k, tmp_path, capfd):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    utterances = tiny_set_16k + [Utterance(str(bad), "yes", 1.0, "x")]
    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    train(TINY, utterances, tiny_set_16k[:2], tmp_path / "disk", config, None, preload=False)
    assert f"training example left out: {bad}" in capfd.readouterr().err
    assert torch.load(tmp_path / "disk" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # Held in memory, the same file stops training before it starts, naming the file.
    with pytest.raises(AudioError, match="notes.wav"):
        train(TINY, utterances, tiny_set_16k[:2], tmp_path / "memory", config, None, preload=True)


def test_cmvn_comes_from_a_seeded_subset_of_a_large_corpus(monkeypatch):
    from speechrnn import train as train_module
    from speechrnn.model import SpeechModel

    waves = [torch.randn(4000) * (i + 1) for i in range(6)]
    monkeypatch.setattr(train_module, "CMVN_UTTERANCES", 3)
    model, again, subset = SpeechModel(TINY), SpeechModel(TINY), SpeechModel(TINY)
    compute_cmvn(model, waves, seed=4)
    compute_cmvn(again, waves, seed=4)
    chosen = statistics_subset(6, seed=4)
    assert len(chosen) == 3 and chosen == statistics_subset(6, seed=4) != statistics_subset(6, seed=5)
    monkeypatch.setattr(train_module, "CMVN_UTTERANCES", 6)
    compute_cmvn(subset, [waves[i] for i in chosen])
    assert torch.equal(model.frontend.cmvn_mean, again.frontend.cmvn_mean)
    torch.testing.assert_close(model.frontend.cmvn_mean, subset.frontend.cmvn_mean)
    torch.testing.assert_close(model.frontend.cmvn_std, subset.frontend.cmvn_std)


@pytest.mark.parametrize("kind, gate_db", [("logmel", 0.0), ("mfcc", 0.0), ("logmel", 15.0)])
def test_a_running_channel_mean_gets_its_prior_and_the_statistics_in_one_pass(kind, gate_db):
    """The prior is the mean log-mel frame of the training audio (with a gate, of the frames it
    lets in); the statistics are those of
    the features the running mean leaves with that prior, though they are gathered in the same
    single reading of each file (the moments of `_RunningMeanMoments`), with a gate too (each
    file is faint noise, which it keeps out, then louder)."""
    from speechrnn.features import FrontendConfig
    from speechrnn.model import SpeechModel

    class Waves(list):
        reads = 0

        def __getitem__(self, i):
            Waves.reads += 1
            return super().__getitem__(i)

    tracking = dict(level_decay_db=10.0, level_start_db=40.0, level_start_lead_db=30.0, running_cmn_gate_db=gate_db) if gate_db else {}
    config = dataclasses.replace(TINY, frontend=FrontendConfig(kind=kind, running_cmn_frames=30.0, **tracking))
    generator = torch.Generator().manual_seed(0)
    waves = Waves(torch.cat([1e-3 * torch.randn(3200, generator=generator), torch.randn(4000 + 800 * i, generator=generator) * (i + 1)]) for i in range(4))
    model = SpeechModel(config)
    compute_cmvn(model, waves)
    assert Waves.reads == len(waves)
    frontend = model.frontend
    pairs = [frontend.log_mel_and_levels(w[None]) for w in list.__iter__(waves)]
    log_mel = [x[0] for x, _ in pairs]
    if gate_db:  # the prior is the mean of the frames the gate lets in: those near the loudest so far
        kept = []
        for x, levels in pairs:
            top = torch.maximum(levels[0].cummax(0).values, frontend.start_level(levels[:, 0]))
            kept.append(x[0, levels[0] >= top - gate_db * math.log(10) / 10])
        assert sum(len(k) for k in kept) < sum(len(x) for x in log_mel) - 40
        torch.testing.assert_close(frontend.cmn_prior, torch.cat(kept).mean(0), atol=1e-4, rtol=0)
    else:
        torch.testing.assert_close(frontend.cmn_prior, torch.cat(log_mel).mean(0), atol=1e-4, rtol=0)
    normalised = [frontend.running_channel_mean(x, levels=levels) for x, levels in pairs]
    if gate_db:  # each file's faint start stayed out of its mean
        assert all(float(mean.count[0]) < x.shape[0] - 10 for x, (_, mean) in zip(log_mel, normalised))
    feats = torch.cat([frontend.transform(out)[0] for out, _ in normalised])
    torch.testing.assert_close(frontend.cmvn_mean, feats.mean(0), atol=1e-4, rtol=0)
    torch.testing.assert_close(frontend.cmvn_std, feats.std(0, unbiased=False), atol=1e-4, rtol=1e-4)


def test_an_unreadable_file_is_left_out_of_the_statistics_and_named_once(capfd):
    from speechrnn.audio import AudioError
    from speechrnn.features import FrontendConfig
    from speechrnn.model import SpeechModel

    class Waves(list):
        def __getitem__(self, i):
            if i == 1:
                raise AudioError("broken.wav", "not a sound file")
            return super().__getitem__(i)

    model = SpeechModel(dataclasses.replace(TINY, frontend=FrontendConfig(kind="logmel", running_cmn_frames=30.0)))
    compute_cmvn(model, Waves([torch.randn(4000), torch.randn(4000), torch.randn(4000) * 2]))
    assert capfd.readouterr().err.count("left out of the feature statistics: broken.wav: not a sound file") == 1
    assert torch.isfinite(model.frontend.cmn_prior).all() and torch.isfinite(model.frontend.cmvn_std).all()


def test_a_streaming_model_trains_with_a_running_channel_mean_and_its_file_keeps_the_prior(tiny_set, tmp_path):
    from speechrnn.features import FrontendConfig

    config = dataclasses.replace(TINY, bidirectional=False, frontend=FrontendConfig(kind="logmel", level_decay_db=10.0, running_cmn_frames=30.0))
    augment = AugmentConfig()  # the augmented path: batch_features applies the running mean before SpecAugment
    model = load_model(train(config, tiny_set, tiny_set[:2], tmp_path / "rcmn", TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1), augment))
    assert model.config.frontend.running_cmn_frames == 30.0
    assert model.frontend.cmn_prior.abs().min() > 0  # set from the training audio before the statistics


def test_fine_tuning_with_own_statistics_keeps_the_weights_and_computes_the_statistics(tiny_set, tmp_path):
    """A start file set to a gated running mean (scripts/set_frontend.py) still holds the prior
    of every frame; ``own_statistics`` computes the prior and statistics from the training
    speech as a run from scratch would, and takes the weights from the file."""
    from conftest import load_script
    from speechrnn.features import FrontendConfig

    frontend = FrontendConfig(kind="logmel", level_decay_db=10.0, level_start_db=30.0, level_start_lead_db=30.0, running_cmn_frames=30.0)
    config = dataclasses.replace(TINY, bidirectional=False, frontend=frontend)
    first = load_model(train(config, tiny_set, tiny_set, tmp_path / "first", TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1), None))
    set_frontend = load_script("scripts/set_frontend.py", "set_frontend")
    gated = set_frontend.with_frontend(first, running_cmn_gate_db=8.0)
    save_model(tmp_path / "gated.pt", gated)
    still = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1, lr=1e-12, weight_decay=0.0)
    # A start level above all of this speech (espeak-ng's loudest frames here: about 29-33 dB) lets no frame in: said so.
    shut = set_frontend.with_frontend(first, running_cmn_gate_db=6.0, level_start_db=40.0)
    save_model(tmp_path / "shut.pt", shut)
    with pytest.raises(ValueError, match="running_cmn_gate_db=6: no frame of the training audio came within"):
        train(shut.config, tiny_set[:2], tiny_set[:2], tmp_path / "shut", still, None, init_from=tmp_path / "shut.pt", own_statistics=True)
    kept = load_model(train(gated.config, tiny_set[:2], tiny_set[:2], tmp_path / "kept", still, None, init_from=tmp_path / "gated.pt"))
    own = load_model(train(gated.config, tiny_set[:2], tiny_set[:2], tmp_path / "own", still, None, init_from=tmp_path / "gated.pt", own_statistics=True))
    expected = SpeechModel(gated.config)
    compute_cmvn(expected, load_waves(tiny_set[:2]))
    for name in ("cmn_prior", "cmvn_mean", "cmvn_std"):
        assert torch.equal(getattr(kept.frontend, name), getattr(gated.frontend, name)), name  # without it: the file's
        assert torch.equal(getattr(own.frontend, name), getattr(expected.frontend, name)), name
        assert not torch.allclose(getattr(own.frontend, name), getattr(gated.frontend, name)), name  # the check above can fail
    for key, value in gated.state_dict().items():
        if not key.startswith("frontend."):
            torch.testing.assert_close(own.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)


def test_a_run_killed_within_an_epoch_resumes_to_the_same_weights(tiny_set, tmp_path, monkeypatch):
    """With checkpoints every 2 batches, a kill in the middle of epoch 2 costs nothing: the
    resumed run repeats the augmentation and dropout draws of the uninterrupted one."""
    import speechrnn.train as train_module

    layered = ModelConfig(n_hidden=32, n_proj=32, n_layers=2, dropout=0.3)  # dropout between layers draws from torch's generator
    config = TrainConfig(epochs=2, batch_size=1, warmup_steps=2, threads=1)
    train(layered, tiny_set, tiny_set[:2], tmp_path / "straight", config, AugmentConfig(), checkpoint_steps=2)
    original = train_module.atomic_torch_save

    def save_then_maybe_stop(state, path):
        original(state, path)
        if state.get("partial", {}).get("epoch") == 2:
            raise KeyboardInterrupt  # killed right after the checkpoint within epoch 2

    monkeypatch.setattr(train_module, "atomic_torch_save", save_then_maybe_stop)
    with pytest.raises(KeyboardInterrupt):
        train(layered, tiny_set, tiny_set[:2], tmp_path / "resumed", config, AugmentConfig(), checkpoint_steps=2)
    monkeypatch.setattr(train_module, "atomic_torch_save", original)
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["partial"]["epoch"] == 2 and saved["partial"]["position"] == 2
    train(layered, tiny_set, tiny_set[:2], tmp_path / "resumed", config, AugmentConfig(), resume=True, checkpoint_steps=2)
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert straight["epoch"] == resumed["epoch"] == 2 and "partial" not in resumed
    assert straight["history"][-1]["train_loss"] == resumed["history"][-1]["train_loss"]
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    # Without the saved random states the second half of epoch 2 would differ: the check can fail.
    skipped = dict(saved)
    skipped["partial"] = {**saved["partial"], "random": [{**saved["partial"]["random"][0], "rng": list(random.Random(7).getstate())}]}
    torch.save(skipped, tmp_path / "resumed" / "checkpoint.pt")
    train(layered, tiny_set, tiny_set[:2], tmp_path / "resumed", config, AugmentConfig(), resume=True, checkpoint_steps=2)
    other = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert any(not torch.equal(value, other["model"][key]) for key, value in straight["model"].items())


def test_mixing_two_model_files_interpolates_their_weights(tiny_set, tmp_path):
    from speechrnn.train import mix_into

    config = TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1)
    first = load_model(train(TINY, tiny_set, tiny_set[:2], tmp_path / "a", config, None))
    second_path = train(TINY, tiny_set, tiny_set[:2], tmp_path / "b", TrainConfig(epochs=1, batch_size=2, warmup_steps=2, threads=1, seed=3), None)
    second = load_model(second_path)
    mix_into(tmp_path / "a" / "best.pt", second_path, 0.25)
    mixed = load_model(tmp_path / "a" / "best.pt")
    for key, value in first.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(mixed.state_dict()[key], 0.75 * value + 0.25 * second.state_dict()[key], msg=key)
    assert not torch.equal(first.head.weight, second.head.weight)  # so the check above can fail
    assert mixed.metadata["mix_weight"] == 0.25 and len(mixed.metadata["blended_sha256"]) == 2
    assert "dev_wer" in first.metadata and not {"dev_wer", "dev_cer", "epoch"} & set(mixed.metadata)  # the unmixed model's figures dropped, as an average drops them
    other = train(ModelConfig(n_hidden=16, n_proj=16, n_layers=1), tiny_set, tiny_set[:2], tmp_path / "c", config, None)
    with pytest.raises(ValueError, match="model config differs"):
        mix_into(tmp_path / "a" / "best.pt", other, 0.5)


def test_speed_perturbation_changes_the_length_by_its_factor():
    wave = torch.sin(torch.arange(16000) * 0.05)
    for speed in (0.9, 1.0, 1.1):
        config = AugmentConfig(speeds=(speed,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0))
        out = perturb_wave(wave, config, random.Random(0))
        assert out.shape[0] == pytest.approx(16000 / speed, abs=1)
    unchanged = perturb_wave(wave, AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0)), random.Random(0))
    assert torch.equal(unchanged, wave)


def test_gain_noise_and_narrowband_do_what_they_say():
    rng = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(16000, generator=rng)
    quiet = perturb_wave(wave, AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(-20.0, -20.0)), random.Random(0))
    assert torch.allclose(quiet, wave / 10)
    noisy = perturb_wave(wave, AugmentConfig(speeds=(1.0,), noise_prob=1.0, narrowband_prob=0.0, gain_db=(0.0, 0.0), snr_db=(10.0, 10.0)), random.Random(0))
    snr = 10 * torch.log10(wave.pow(2).mean() / (noisy - wave).pow(2).mean())
    assert snr == pytest.approx(10.0, abs=0.3)
    narrow = perturb_wave(wave, AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=1.0, gain_db=(0.0, 0.0)), random.Random(0))
    spectrum = torch.fft.rfft(narrow).abs().pow(2)  # 1 Hz bins
    assert narrow.shape == wave.shape and spectrum[4200:].sum() < 0.01 * spectrum[:3800].sum()  # white noise: equal shares before


def test_dither_adds_noise_in_its_level_range_after_the_gain():
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    plain = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(-20.0, -20.0))
    for level in (-80.0, -60.0):
        dithered = perturb_wave(wave, dataclasses.replace(plain, dither_db=(level, level)), random.Random(0))
        # The dither's level does not move with the -20 dB gain: it is measured against the gained wave.
        added_db = 10 * torch.log10((dithered - wave / 10).pow(2).mean())
        assert added_db == pytest.approx(level, abs=0.3)
    drawn = [10 * torch.log10((perturb_wave(wave, dataclasses.replace(plain, dither_db=(-90.0, -65.0)), random.Random(seed)) - wave / 10).pow(2).mean()) for seed in range(20)]
    assert all(-90.5 < d < -64.5 for d in drawn) and max(drawn) - min(drawn) > 10  # spread over the range
    with pytest.raises(ValueError, match="dither_db"):
        AugmentConfig(dither_db=(-60.0, -90.0))


def test_vtlp_filterbank_reads_a_tone_where_the_warp_puts_it():
    frontend = Frontend(FrontendConfig())
    bank = frontend.mel.mel_scale.fb
    assert vtlp_filterbank(bank, 1.0, 16000) is bank
    seconds = torch.arange(16000) / 16000

    def energies(freq: float, filterbank: torch.Tensor | None = None) -> torch.Tensor:
        return frontend.mel_energies(torch.sin(2 * math.pi * freq * seconds)[None], filterbank)[0].mean(0)

    def peak(freq: float, filterbank: torch.Tensor | None = None) -> int:
        return int(energies(freq, filterbank).argmax())

    for alpha in (0.9, 1.1):
        warped = vtlp_filterbank(bank, alpha, 16000)
        # Below the knee (4800 Hz * min(alpha, 1) / alpha) a tone is read alpha times higher.
        for freq in (500.0, 1000.0, 2000.0, 4000.0):
            assert peak(freq, warped) == peak(alpha * freq) != peak(freq)
            # The warp moves energy between filters, it does not make or lose it.
            assert float(energies(freq, warped).logsumexp(0)) == pytest.approx(float(energies(freq).logsumexp(0)), abs=1e-3)
    # Above it a straight line runs to the Nyquist frequency, which stays put: 6000 Hz is read
    # at 6240 Hz (alpha 1.1) and 5700 Hz (alpha 0.9), not at 6600 and 5400.
    assert peak(6000.0, vtlp_filterbank(bank, 1.1, 16000)) == peak(6240.0) != peak(6600.0)
    assert peak(6000.0, vtlp_filterbank(bank, 0.9, 16000)) == peak(5700.0) != peak(5400.0)
    with pytest.raises(ValueError, match="vtlp"):
        AugmentConfig(vtlp=(1.1, 0.9))


def test_vtlp_warps_each_training_example_by_its_own_draw_and_is_off_without_one():
    model = SpeechModel(TINY)
    frontend = model.frontend
    generator = torch.Generator().manual_seed(0)
    padded, lens = pad_waves([0.1 * torch.randn(16000, generator=generator), 0.1 * torch.randn(12000, generator=generator)])
    plain = AugmentConfig(speeds=(1.0,), noise_prob=0.0, narrowband_prob=0.0, gain_db=(0.0, 0.0), n_freq_masks=0, n_time_masks=0)
    rng = random.Random(0)
    unwarped, _ = batch_features(model, padded, lens, plain, rng)
    assert rng.getstate() == random.Random(0).getstate()  # off: no draw, so earlier recipes repeat bit for bit
    assert torch.equal(unwarped, frontend.normalize(frontend.transform(frontend.log_mel(padded))))
    warped, _ = batch_features(model, padded, lens, dataclasses.replace(plain, vtlp=(0.9, 1.1)), random.Random(0))
    replay = random.Random(0)
    alphas = [replay.uniform(0.9, 1.1) for _ in range(2)]
    for row, alpha in enumerate(alphas):
        bank = vtlp_filterbank(frontend.mel.mel_scale.fb, alpha, 16000)
        expected = frontend.normalize(frontend.transform(frontend.log_mel(padded[row : row + 1], bank)))[0]
        torch.testing.assert_close(warped[row], expected)
        assert (warped[row] - unwarped[row]).abs().max() > 0.1


def test_spec_augment_masks_stay_inside_the_utterance_and_their_limits():
    config = AugmentConfig(n_freq_masks=2, max_freq_width=15, n_time_masks=2, max_time_width=25, max_time_ratio=0.2)
    rng = random.Random(0)
    for _ in range(50):
        feats = torch.randn(120, 80) + 5.0  # 100 frames of utterance, 20 of padding
        masked = mask_times(feats, 100, config, rng)
        zeroed = (masked == 0).all(dim=1)
        assert not zeroed[100:].any() and torch.equal(masked[~zeroed], feats[~zeroed])
        assert 0 <= int(zeroed.sum()) <= 2 * 20  # two masks of at most 20% of 100 frames
        masked = mask_frequencies(feats, 100, config, rng)
        filled = (masked == feats[:100].mean()).all(dim=0)
        assert int(filled.sum()) <= 2 * 15 and torch.equal(masked[:, ~filled], feats[:, ~filled])


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine_to_its_floor():
    config = TrainConfig(warmup_steps=10, final_lr_ratio=0.02)
    factors = [lr_factor(step, 110, config) for step in range(120)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0) and factors[60] == pytest.approx(0.51)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[110] == factors[119] == pytest.approx(0.02)


def test_level_calibration_sets_the_median_training_speech_level(tiny_set, tmp_path):
    """A bidirectional model file is given its training speech's median level (what offline
    inputs are scaled to); the dev figures training stored are renamed, since they were read
    without it; the weights do not change."""
    import statistics

    from speechrnn.audio import load_audio
    from speechrnn.features import speech_level_db
    from speechrnn.model import SpeechModel, save_model
    from speechrnn.train import calibrate_level

    torch.manual_seed(0)
    model = SpeechModel(dataclasses.replace(TINY, bidirectional=True))
    path = tmp_path / "model.pt"
    save_model(path, model, metadata={"epoch": 3, "dev_wer": 50.0, "dev_cer": 20.0})
    calibrate_level(path, tiny_set + [Utterance(str(tmp_path / "missing.wav"), "x", 1.0, "z")])  # an unreadable one is left out
    calibrated = load_model(path)
    waves = [torch.from_numpy(load_audio(u.audio)) for u in tiny_set]
    levels = [float(speech_level_db(w[None], torch.tensor([len(w)]), TINY.frontend)[0]) for w in waves]
    assert calibrated.config.level_db == round(statistics.median(levels), 1)
    assert calibrated.metadata == {"epoch": 3, "dev_wer_uncalibrated": 50.0, "dev_cer_uncalibrated": 20.0, "level_db_from": "median of 4 training utterances"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), calibrated.state_dict().values()))
