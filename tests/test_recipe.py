"""The AN4 recipe end to end at toy size: both stages, resume, results file."""
from __future__ import annotations

import dataclasses
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from conftest import load_script
from speechrnn.data import AugmentConfig, Utterance, an4_dev_split, an4_utterances, write_manifest
from speechrnn.decoding import beam_search_for, partner_file, tuning_path
from speechrnn.evaluate import evaluate
from speechrnn.model import BUNDLED_DIR, differing_weights, load_model, save_model
from speechrnn.synth import engine_available
from speechrnn.tuning import RESCORE_WEIGHTS

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "an4" / "run.py"
TOY = ["--hidden", "16", "--layers", "1", "--epochs", "1", "--robust-epochs", "1", "--synth-share", "0.02", "--lm-order", "0", "--threads", "1"]

recipe = load_script("recipes/an4/run.py", "an4_recipe")
manifest_recipe = load_script("recipes/manifest/run.py", "manifest_recipe")


def test_recipe_defaults_follow_the_model_kind_and_can_be_turned_off():
    """A streaming model's level tracking starts from the recipe's level with its lead bound;
    'none' turns the start off (and its bound with it), and a bound alone is refused."""
    streaming = recipe.parse_args(["--streaming"])
    assert (streaming.level_decay_db, streaming.level_start_db, streaming.level_start_lead_db) == (10.0, 24.0, 43.0)
    offline = recipe.parse_args([])
    assert (offline.level_decay_db, offline.level_start_db, offline.level_start_lead_db) == (0.0, None, None)
    unbounded = recipe.parse_args(["--streaming", "--level-start-lead-db", "none"])
    assert (unbounded.level_start_db, unbounded.level_start_lead_db) == (24.0, None)
    off = recipe.parse_args(["--streaming", "--level-start-db", "none"])
    assert (off.level_start_db, off.level_start_lead_db) == (None, None)
    assert recipe.parse_args(["--streaming", "--level-start-db", "30", "--level-start-lead-db", "35"]).level_start_lead_db == 35.0
    with pytest.raises(SystemExit):
        recipe.parse_args(["--streaming", "--level-start-db", "none", "--level-start-lead-db", "40"])


def test_intermediate_ctc_is_on_for_offline_models_of_two_or_more_layers():
    """The offline recipe trains with an intermediate CTC loss of weight 0.3 below its last
    layer; the streaming recipe and one-layer models (nothing below) without, unless asked."""
    assert recipe.parse_args([]).inter_ctc_weight == 0.3
    assert recipe.parse_args(["--streaming"]).inter_ctc_weight == 0.0
    assert recipe.parse_args(["--layers", "1"]).inter_ctc_weight == 0.0
    assert recipe.parse_args(["--inter-ctc-weight", "0"]).inter_ctc_weight == 0.0
    assert recipe.inter_ctc_options(0.3, None, 3) == {"inter_ctc_weight": 0.3, "inter_ctc_layer": 2}
    assert recipe.inter_ctc_options(0.3, 1, 3) == {"inter_ctc_weight": 0.3, "inter_ctc_layer": 1}
    assert recipe.inter_ctc_options(0.0, 1, 3) == {}


def test_convolution_frontend_option_reaches_the_model():
    assert recipe.model_config(recipe.parse_args([])).conv_channels == 0
    assert recipe.model_config(recipe.parse_args(["--conv-channels", "16"])).conv_channels == 16
    streaming = recipe.model_config(recipe.parse_args(["--streaming", "--conv-channels", "16"]))
    assert (streaming.conv_channels, streaming.bidirectional) == (16, False)  # (a causal one)
    with pytest.raises(SystemExit):
        recipe.parse_args(["--conv-channels", "-1"])


def test_input_lookahead_is_for_streaming_models(capsys):
    """A bidirectional model reads every future frame already: an input look-ahead would only
    widen its projection, so the recipe refuses it before any data is read."""
    assert recipe.model_config(recipe.parse_args(["--streaming", "--input-lookahead", "4"])).input_lookahead == 4
    with pytest.raises(SystemExit):
        recipe.parse_args(["--input-lookahead", "4"])
    assert "input_lookahead (4) needs a unidirectional" in capsys.readouterr().err


def test_a_whole_utterance_mean_is_refused_for_a_streaming_model_in_the_options_words(capsys):
    assert recipe.model_config(recipe.parse_args(["--utterance-cmn"])).frontend.utterance_cmn
    with pytest.raises(SystemExit):
        recipe.parse_args(["--streaming", "--utterance-cmn"])
    assert "--utterance-cmn subtracts a whole utterance's mean, which a stream does not have" in capsys.readouterr().err


@pytest.mark.skipif(not (engine_available("espeak-ng") and engine_available("flite")), reason="espeak-ng and flite are needed (bash scripts/setup.sh installs them as root)")
def test_synthetic_voices_of_two_engines(tmp_path, monkeypatch):
    """`--synth-engines espeak-ng flite`: each engine speaks its own draw of the transcripts,
    espeak-ng's the draw (and folder) it had alone; flite only in the voices asked for."""
    monkeypatch.setattr(recipe, "HERE", tmp_path)
    texts = ["enter one two", "rubout a b", "yes", "no", "go", "stop", "erase c q", "five six", "help", "repeat"]
    utterances = [Utterance(f"u{i}.wav", text, 1.0, "s") for i, text in enumerate(texts)]
    args = recipe.parse_args(["--synth-share", "0.5", "--synth-engines", "espeak-ng", "flite", "--flite-voices", "rms", "awb"])
    synth = recipe.synthetic_speech(utterances, args)
    espeak = [u for u in synth if u.speaker.startswith("espeak:")]
    flite = [u for u in synth if u.speaker.startswith("flite:")]
    assert espeak and flite and len(espeak) + len(flite) == len(synth)
    draw = random.Random(0)
    assert [u.text for u in espeak] == [text for text in texts if draw.random() < 0.5]  # espeak-ng's own draw, as before flite
    assert {u.speaker for u in flite} <= {"flite:awb", "flite:rms"}
    assert (tmp_path / "exp" / "synth-0.5").is_dir() and (tmp_path / "exp" / "synth-0.5-flite-awb+rms" / "synth.jsonl").is_file()
    assert all(u.duration > 0.2 and sf.info(u.audio).samplerate in (16000, 22050) for u in synth)
    assert recipe.synthetic_speech(utterances, args) == synth  # read back from the folders
    assert recipe.synthetic_speech(utterances, recipe.parse_args(["--synth-share", "0"])) == []
    with pytest.raises(SystemExit):
        recipe.parse_args(["--synth-engines", "flite", "flite"])


@pytest.mark.skipif(not engine_available("espeak-ng"), reason="espeak-ng is needed (bash scripts/setup.sh installs it as root)")
def test_synth_texts_are_said_line_by_line_and_read_back(tmp_path, monkeypatch):
    """`--synth-texts FILE`: every line with words, normalised, said once per engine; a changed
    file is said anew; a file that is missing or holds no words ends the run with its name."""
    monkeypatch.setattr(recipe, "HERE", tmp_path)
    texts = tmp_path / "phrases.txt"
    texts.write_text("Veep, match!\n\n  pixel palmed\n")
    args = recipe.parse_args(["--synth-share", "0", "--synth-texts", str(texts)])
    synth = recipe.synthetic_speech([], args)
    assert [u.text for u in synth] == ["veep match", "pixel palmed"]
    assert all(u.speaker.startswith("espeak:") and u.duration > 0.2 for u in synth)
    assert recipe.synthetic_speech([], args) == synth  # read back from its folder
    texts.write_text("outfitted rick\n")
    assert [u.text for u in recipe.synthetic_speech([], args)] == ["outfitted rick"]
    assert len(list((tmp_path / "exp").glob("synth-texts-*-espeak-ng"))) == 2
    texts.write_text("123 ...\n")
    with pytest.raises(SystemExit, match="phrases.txt: no words in it"):
        recipe.synthetic_speech([], args)
    with pytest.raises(SystemExit, match="missing.txt: cannot read it"):
        recipe.synthetic_speech([], recipe.parse_args(["--synth-texts", str(tmp_path / "missing.txt")]))


def test_word_phrases_draw_distinct_listed_words_and_leave_out_the_excluded(tmp_path, monkeypatch):
    script = load_script("scripts/word_phrases.py", "word_phrases")
    words = tmp_path / "words"
    words.write_text("apple\nBoston\nit's\nox\ncherry\ndate\nelder\nfig\ngrape\n")
    out = tmp_path / "phrases.txt"
    monkeypatch.setattr(sys, "argv", ["word_phrases.py", "--words", str(words), "--count", "40", "--exclude", "fig", "-o", str(out)])
    script.main()
    phrases = [line.split() for line in out.read_text().splitlines()]
    assert len(phrases) == 40 and all(2 <= len(p) <= 4 and len(set(p)) == len(p) for p in phrases)
    assert {w for p in phrases for w in p} == {"apple", "cherry", "date", "elder", "grape"}  # no capitals, possessives, short or excluded words


def test_a_synthesiser_that_is_not_installed_is_named_unless_its_speech_is_cached(monkeypatch, tmp_path):
    utterances = [Utterance(str(tmp_path / "a.wav"), "yes", 1.0, "s1"), Utterance(str(tmp_path / "b.wav"), "no", 1.0, "s2")]
    for missing in ("espeak-ng", "flite"):
        monkeypatch.setattr(recipe, "engine_available", lambda engine: engine != missing)
        with pytest.raises(SystemExit, match=f"--synth-engines {missing}: {missing} is not installed"):
            recipe.synthesize(utterances, tmp_path / missing, 1.0, seed=0, engine=missing)
        assert not (tmp_path / missing).exists()
    cached = tmp_path / "cached"
    cached.mkdir()
    for utterance in utterances:  # a manifest's audio files must exist
        sf.write(utterance.audio, torch.zeros(16000).numpy(), 16000)
    write_manifest(cached / "synth.jsonl", utterances)
    assert recipe.synthesize(utterances, cached, 1.0, seed=0, engine="flite") == utterances  # read back, flite or not


def test_distillation_options_check_the_teacher_before_any_data_is_read(tmp_path, capsys):
    args = recipe.parse_args(["--streaming", "--distill-from", "offline"])
    assert (args.distill_from, args.distill_weight, args.distill_shift) == ("offline", 0.5, 3)
    missing = tmp_path / "missing.pt"
    for bad, says in (
        (["--distill-from", str(missing)], "missing.pt"),
        (["--distill-from", "offline", "--distill-weight", "1"], "0 < distill_weight < 1"),
        (["--distill-from", "offline", "--distill-shift", "-1"], "distill_shift >= 0"),
        (["--distill-from", "offline", "--frame-stack", "3"], "a teacher needs the student's output frames"),
    ):
        with pytest.raises(SystemExit):
            recipe.parse_args(["--streaming", *bad])
        assert says in capsys.readouterr().err


def test_spec_augment_widths_reach_both_stages_augmentation():
    default = recipe.robust_augment(recipe.parse_args([]))
    assert (default.max_freq_width, default.max_time_width) == (AugmentConfig.max_freq_width, AugmentConfig.max_time_width)
    wide = recipe.robust_augment(recipe.parse_args(["--freq-mask-width", "27", "--time-mask-width", "40"]))
    assert (wide.max_freq_width, wide.max_time_width) == (27, 40)
    quiet = recipe.robust_augment(recipe.parse_args(["--no-level-augment", "--freq-mask-width", "20"]))
    assert (quiet.gain_db, quiet.noise_prob, quiet.max_freq_width) == ((0.0, 0.0), 0.0, 20)


def test_log_offset_reaches_both_recipes_models(capsys):
    required = ["--train", "t.jsonl", "--dev", "d.jsonl", "--exp", "x"]
    for streaming in ([], ["--streaming"]):
        assert recipe.model_config(recipe.parse_args(streaming)).frontend.log_offset == 1e-6
        assert recipe.model_config(recipe.parse_args([*streaming, "--log-offset", "1e-10"])).frontend.log_offset == 1e-10
        args = manifest_recipe.build_parser().parse_args([*required, *streaming, "--log-offset", "1e-10"])
        assert manifest_recipe.model_config(args).frontend.log_offset == 1e-10
    with pytest.raises(SystemExit):
        recipe.parse_args(["--log-offset", "0"])
    assert "log_offset (the floor added before the log) must be positive" in capsys.readouterr().err


def test_noise_snr_range_reaches_the_robust_stage_only(capsys):
    assert recipe.robust_augment(recipe.parse_args([])).snr_db == AugmentConfig.snr_db
    robust = recipe.robust_augment(recipe.parse_args(["--snr-db", "5", "40"]))
    assert robust.snr_db == (5.0, 40.0) and robust.noise_prob == AugmentConfig.noise_prob
    assert recipe.clean_augment(robust).noise_prob == 0.0
    with pytest.raises(SystemExit):
        recipe.parse_args(["--snr-db", "40", "5"])
    assert "snr_db must be a range" in capsys.readouterr().err


def test_vtlp_reaches_both_stages_of_the_an4_recipe_and_the_manifest_recipe(capsys):
    assert recipe.robust_augment(recipe.parse_args([])).vtlp is None
    robust = recipe.robust_augment(recipe.parse_args(["--vtlp", "0.9", "1.1"]))
    assert robust.vtlp == recipe.clean_augment(robust).vtlp == (0.9, 1.1)
    with pytest.raises(SystemExit):
        recipe.parse_args(["--vtlp", "1.1", "0.9"])
    assert "vtlp must be a range" in capsys.readouterr().err
    # The manifest recipe checks its augmentation before it reads any manifest (these do not exist).
    with pytest.raises(SystemExit):
        manifest_recipe.main(["--train", "missing.jsonl", "--dev", "missing.jsonl", "--exp", "x", "--vtlp", "1.1", "0.9"])
    assert "vtlp must be a range" in capsys.readouterr().err


def test_the_manifest_recipe_refuses_what_would_fail_after_training(tmp_path, capsys):
    import numpy as np

    sf.write(str(tmp_path / "a.wav"), np.zeros(8000, np.float32), 16000)
    sf.write(str(tmp_path / "short.wav"), np.zeros(1000, np.float32), 16000)
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"audio": "a.wav", "text": "go back"}) + "\n" + json.dumps({"audio": "short.wav", "text": "go"}) + "\n"
    )
    (tmp_path / "test.jsonl").write_text(json.dumps({"audio": "gone.wav", "text": "go", "duration": 1.0}) + "\n")
    data = ["--train", str(tmp_path / "train.jsonl"), "--dev", str(tmp_path / "train.jsonl"), "--exp", str(tmp_path / "exp")]
    cases = [
        (["--test", str(tmp_path / "test.jsonl")], "test.jsonl:1: no such audio file"),  # a test set read only after training
        (["--lm-order", "5"], "--lm-order 5: the longest training transcript has 2 words, so at most 4-grams exist"),
        (["--beam-size", "0"], "--beam-size sizes of 1 or more"),
        (["--batch-size", "0"], "training needs at least 1 epoch, 1 utterance a batch"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit):
            manifest_recipe.main([*data, *extra])
        err = capsys.readouterr().err
        assert message in err, err
        if extra[0] == "--lm-order":  # the manifests were read: the clip too short to train on is left out, counted
            assert "1 of 2 utterances left out (1 under 0.25 s)" in err
    assert not (tmp_path / "exp").exists()  # refused before anything was written
    # A folder that holds a run is continued with --resume, not overwritten by a new one.
    (tmp_path / "exp").mkdir()
    for held in ("best.pt", "checkpoint.pt"):  # a model file alone too: it is not trained over
        (tmp_path / "exp" / held).write_bytes(b"")
        with pytest.raises(SystemExit):
            manifest_recipe.main(data)
        assert f"holds a run already ({tmp_path / 'exp' / held}): --resume continues it" in capsys.readouterr().err
        (tmp_path / "exp" / held).unlink()


def test_rooms_reach_the_robust_stage_only():
    robust = recipe.robust_augment(recipe.parse_args(["--reverb-prob", "0.3"]))
    assert robust.reverb_prob == 0.3 and recipe.robust_augment(recipe.parse_args([])).reverb_prob == 0.0
    clean = recipe.clean_augment(robust)
    assert (clean.reverb_prob, clean.noise_prob, clean.narrowband_prob, clean.gain_db) == (0.0, 0.0, 0.0, (0.0, 0.0))
    assert clean.max_freq_width == robust.max_freq_width and clean.concat_prob == robust.concat_prob  # SpecAugment and joined examples stay


def test_later_cycles_and_the_room_stage_follow_the_robust_stage():
    stages = recipe.recipe_stages(recipe.parse_args(["--room-epochs", "25", "--average-epochs", "3"]), Path("exp"), [], [])
    assert [(s.name, s.exp, s.keep) for s in stages] == [("clean", Path("exp/clean"), "best"), ("robust", Path("exp/robust"), "last"), ("rooms", Path("exp"), "last")]
    clean, robust, rooms = stages
    assert (clean.augment.reverb_prob, robust.augment.reverb_prob, rooms.augment.reverb_prob) == (0.0, 0.0, 0.3)
    assert rooms.augment == dataclasses.replace(robust.augment, reverb_prob=0.3)  # otherwise the robust stage's augmentation
    assert (rooms.train_config.epochs, rooms.train_config.lr, rooms.train_config.warmup_steps) == (25, 5e-4, 100)
    assert (robust.train_config.average_epochs, rooms.train_config.average_epochs) == (0, 3)  # only the last stage averages
    two = recipe.recipe_stages(recipe.parse_args(["--average-epochs", "3"]), Path("exp"), [], [])
    assert [(s.name, s.exp) for s in two] == [("clean", Path("exp/clean")), ("robust", Path("exp"))] and two[1].train_config.average_epochs == 3
    cycles = recipe.recipe_stages(recipe.parse_args(["--streaming", "--cycles", "2", "--room-epochs", "5"]), Path("exp"), [], [])
    assert [(s.name, s.exp) for s in cycles] == [
        ("clean", Path("exp/clean")), ("robust", Path("exp/robust")), ("clean 2", Path("exp/cycle2/clean")), ("robust 2", Path("exp/cycle2/robust")), ("rooms", Path("exp")),
    ]
    assert (cycles[0].train_config.epochs, cycles[0].train_config.lr) == (120, 2e-3) and (cycles[2].train_config.epochs, cycles[2].train_config.lr) == (40, 1e-3)
    assert cycles[2].train_config == dataclasses.replace(cycles[0].train_config, epochs=40, lr=1e-3) and cycles[3].train_config == cycles[1].train_config
    assert not any(s.half_start for s in cycles)
    # --half-restarts: where a later cycle or the room stage begins, the start is rounded to float16.
    halves = recipe.recipe_stages(recipe.parse_args(["--streaming", "--cycles", "2", "--room-epochs", "5", "--half-restarts"]), Path("exp"), [], [])
    assert [s.half_start for s in halves] == [False, False, True, False, True]
    for bad in (
        ["--robust-epochs", "0", "--room-epochs", "5"], ["--room-epochs", "5", "--room-prob", "0"], ["--room-epochs", "-1"],
        ["--cycles", "0"], ["--cycles", "2", "--robust-epochs", "0"], ["--cycles", "2", "--cycle-epochs", "0"], ["--half-restarts"],
    ):
        with pytest.raises(SystemExit):
            recipe.parse_args(bad)


def test_a_run_rewrites_its_own_results_section_where_it_stands_and_keeps_the_others():
    """RESULTS.md holds generated model sections, then hand-written ones from `## Notes` on
    (and README tables moved there later): a run replaces its model's section in place, a new
    model's goes before the notes, and nothing else moves (run.py once sorted them by name,
    which put the README tables first)."""
    text = recipe.merge_section("", "offline", "## offline: 3x320\n\nold rows\n")
    text = recipe.merge_section(text, "streaming", "## streaming: 3x320\n\nstreaming rows\n")
    text += "\n## Notes: how the recipe got here\n\nSession 1: a colon.\n\n## The README's status notes\n\nkept\n"
    headers = lambda t: [line for line in t.splitlines() if line.startswith("## ")]
    replaced = recipe.merge_section(text, "offline", "## offline: 3x320\n\nnew rows\n")
    assert headers(replaced) == headers(text) and "new rows" in replaced and "old rows" not in replaced
    assert replaced.replace("new rows", "old rows") == text
    added = recipe.merge_section(text, "toy", "## toy: 1x8\n\ntoy rows\n")
    assert headers(added) == ["## offline: 3x320", "## streaming: 3x320", "## toy: 1x8", "## Notes: how the recipe got here", "## The README's status notes"]
    # The real file: a model's own section written again leaves it as it is.
    real = (RECIPE.parent / "RESULTS.md").read_text()
    offline = "## " + real.split("\n## ")[1].rstrip("\n") + "\n"
    assert offline.startswith("## offline:") and recipe.merge_section(real, "offline", offline) == real


def test_partner_is_refused_where_nothing_would_record_it(capsys):
    """`--partner` chooses a second pass for the shipped settings: without --bundle, or without
    an LM to re-rank, it would be silently ignored, and a missing model would be found missing
    only after training, so the recipe refuses these before any data is read."""
    assert recipe.parse_args(["--bundle", "--partner", "streaming", "--partner", "streaming-partner"]).partner == ["streaming", "streaming-partner"]
    for argv in (["--partner", "streaming"], ["--bundle", "--lm-order", "0", "--partner", "streaming"]):
        with pytest.raises(SystemExit):
            recipe.parse_args(argv)
        assert "--partner records a second pass" in capsys.readouterr().err
    # A partner that does not exist, or the shipped model itself, is refused before training too.
    for argv, reason in ((["--bundle", "--partner", "no-such-model"], "no such model"), (["--bundle", "--partner", "offline"], "the model being shipped cannot re-rank itself")):
        with pytest.raises(SystemExit):
            recipe.parse_args(argv)
        assert f"--partner {argv[-1]}: {reason}" in capsys.readouterr().err


def test_own_statistics_need_a_start_file_in_both_recipes(tmp_path, capsys):
    for module in (recipe, manifest_recipe):
        argv = ["--streaming", "--own-statistics"] + ([] if module is recipe else ["--train", "x.jsonl", "--dev", "y.jsonl", "--exp", str(tmp_path / "m")])
        with pytest.raises(SystemExit):
            module.parse_args(argv) if module is recipe else module.main(argv)
        assert "--own-statistics recomputes a start file's statistics: give --init-from" in capsys.readouterr().err


def test_own_statistics_reach_the_first_stage_only(an4_root, tmp_path, monkeypatch):
    """`--own-statistics` recomputes the start file's statistics for the stage that starts from
    it; later stages start from the stage before, whose statistics are this run's already."""
    calls = []

    class Trained(Exception):
        pass

    def recorded_train(*args, **kwargs):
        calls.append((kwargs["init_from"], kwargs["own_statistics"]))
        return tmp_path / f"stage{len(calls)}.pt"

    def stop(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(recipe, "train", recorded_train)
    monkeypatch.setattr(recipe, "synthetic_speech", lambda *args: [])
    monkeypatch.setattr(recipe, "evaluate_sets", stop)
    monkeypatch.setattr(sys, "argv", ["run.py", "--an4", str(an4_root), "--streaming", "--exp", str(tmp_path / "exp"), "--init-from", "start.pt", "--own-statistics", "--room-epochs", "1"])
    with pytest.raises(Trained):
        recipe.main()
    assert calls == [("start.pt", True), (tmp_path / "stage1.pt", False), (tmp_path / "stage2.pt", False)]
    # Run again into a folder whose stage holds a checkpoint: refused before any data is read.
    (tmp_path / "exp" / "robust").mkdir(parents=True, exist_ok=True)
    (tmp_path / "exp" / "robust" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"exp holds a run already \(.*checkpoint.pt\): --resume continues it"):
        recipe.main()


def test_bundle_reads_settings_files_or_names_the_broken_one(tmp_path):
    """--bundle reads the settings it replaces (before it ships anything) and those beside it
    for their partners: a broken one stops it with the file's name."""
    good = tmp_path / "good.lm.json"
    write_json(good, {"lm": "x.arpa", "partners": {"offline": {"weight": 1.0}}})
    assert recipe.read_settings(good)["partners"] == {"offline": {"weight": 1.0}}
    for name, text in (("broken.lm.json", "{oops"), ("list.lm.json", "[1, 2]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit, match=f"{name}: not a readable decoding settings file"):
            recipe.read_settings(tmp_path / name)
    assert partner_file("offline", tmp_path) == (BUNDLED_DIR / "offline.pt").resolve()
    assert partner_file("nothing-here.pt", tmp_path) is None


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_recipe(an4_root, tmp_path, *extra, check=True):
    args = [sys.executable, str(RECIPE), "--an4", str(an4_root), "--name", "toy", "--exp", str(tmp_path / "exp"), "--results", str(tmp_path / "RESULTS.md"), *TOY, *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_one_stage_recipe_keeps_its_last_epoch_when_asked(an4_root, tmp_path):
    run_recipe(an4_root, tmp_path, "--robust-epochs", "0", "--epochs", "2", "--keep", "last")
    exp = tmp_path / "exp"
    assert not (exp / "clean").exists()
    # A toy model reads dev no better at epoch 2 than at 1 (100% WER), so keeping the best would keep epoch 1.
    first, second = torch.load(exp / "checkpoint.pt", weights_only=True)["history"]
    assert second["dev_wer"] >= first["dev_wer"]
    assert load_model(exp / "best.pt").metadata["epoch"] == 2
    assert "model: epoch 2 of the last stage (its last)" in (tmp_path / "RESULTS.md").read_text()


def test_evaluate_only_reads_a_model_file_placed_as_best_pt_without_training_of_its_own(an4_root, tmp_path):
    from speechrnn.model import ModelConfig, SpeechModel
    from speechrnn.train import average_models

    exp = tmp_path / "exp"
    exp.mkdir()
    parents = []
    for seed in range(2):
        torch.manual_seed(seed)
        parents.append(tmp_path / f"m{seed}.pt")
        save_model(parents[-1], SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1)))
    soup = average_models(parents, [3, 1])
    save_model(exp / "best.pt", soup, metadata=soup.metadata)
    # The section it replaces had a learning curve; the model file has none of its own.
    (tmp_path / "toy_curve.png").write_bytes(b"an older run's plot")
    (tmp_path / "RESULTS.md").write_text("# AN4 results\n\n## toy: an older run\n\nLearning curve (dev, greedy; plot: [toy_curve.png](toy_curve.png)):\n")
    run_recipe(an4_root, tmp_path, "--evaluate-only")
    results = (tmp_path / "RESULTS.md").read_text()
    assert "Training: none in this folder (`--evaluate-only` of a model file placed as its best.pt" in results
    assert '"average_weights": [0.75, 0.25]' in results and "| test | 130 |" in results
    assert "Learning curve" not in results and "an older run" not in results
    assert not (tmp_path / "toy_curve.png").exists()
    # Nothing placed there: said at once.
    (exp / "best.pt").unlink()
    result = run_recipe(an4_root, tmp_path, "--evaluate-only", check=False)
    assert result.returncode != 0 and f"--evaluate-only: {exp / 'best.pt'} does not exist" in result.stderr


def test_two_stage_recipe_fine_tunes_the_clean_stage_and_reports_both(an4_root, tmp_path):
    run_recipe(an4_root, tmp_path)
    exp = tmp_path / "exp"
    clean = torch.load(exp / "clean" / "checkpoint.pt", weights_only=True)
    robust = torch.load(exp / "checkpoint.pt", weights_only=True)
    assert clean["epoch"] == robust["epoch"] == 1
    assert clean["train_config"]["lr"] == 2e-3 and robust["train_config"]["lr"] == 5e-4
    assert load_model(exp / "best.pt").metadata["stage"] == "robust"
    results = (tmp_path / "RESULTS.md").read_text()
    assert "clean stage: 1 epochs on 869 utterances" in results
    assert "robust stage: 1 epochs on" in results and "| test | 130 |" in results
    assert (tmp_path / "toy_curve.png").stat().st_size > 1000
    # A resumed finished run trains nothing more and reports the same stages; asked for an LM
    # now, it builds one from the training transcripts and tunes it on dev, and it ships the
    # model with its LM into --bundle-dir (here a scratch folder, not the package's).
    shipped_before = {p.name: p.stat().st_mtime_ns for p in BUNDLED_DIR.iterdir()}
    models = tmp_path / "models"
    result = run_recipe(an4_root, tmp_path, "--resume", "--lm-order", "2", "--beam-size", "4", "--bundle", "--bundle-dir", str(models))
    assert "resuming after epoch 1" in result.stderr
    assert torch.load(exp / "checkpoint.pt", weights_only=True)["epoch"] == 1
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| dev + LM | 79 |" in results and "| test + LM | 130 |" in results
    assert "LM: 2-gram modified Kneser-Ney from the 869 training transcripts" in results
    assert json.loads((exp / "best.lm.json").read_text())["lm"] == "lm/an4-2gram.arpa"
    assert {p.name: p.stat().st_mtime_ns for p in BUNDLED_DIR.iterdir()} == shipped_before
    assert sorted(p.name for p in models.iterdir()) == ["an4-2gram.arpa", "an4.lexicon.txt", "toy.lm.json", "toy.pt"]
    # The figures shipped with the files are the shipped files' own, as the bundled models'
    # are checked in tests/test_an4.py.
    model = load_model(models / "toy.pt")
    half = model.metadata["float16"]
    assert f"| test (bundled, float{16 if half else 32}) | 130 |" in (tmp_path / "RESULTS.md").read_text()
    test = an4_utterances(an4_root, "test")
    greedy = evaluate(model, test)
    assert greedy.wer == pytest.approx(model.metadata["an4_test_wer"], abs=0.01)
    assert greedy.cer == pytest.approx(model.metadata["an4_test_cer"], abs=0.01)
    settings = json.loads(tuning_path(model.source).read_text())
    assert settings["lm"] == "an4-2gram.arpa" and {"an4_test", "an4_dev"} <= settings.keys()
    with_lm = evaluate(model, test, search=beam_search_for(model))
    assert with_lm.wer == pytest.approx(settings["an4_test"]["wer"], abs=0.01)
    # With --rescore-with, a second pass is tuned on dev too, and the partner (which must ship
    # in the same folder) is named by its file name in the shipped settings.
    partner = models / "partner.pt"
    partner.write_bytes((BUNDLED_DIR / "streaming.pt").read_bytes())
    run_recipe(an4_root, tmp_path, "--resume", "--lm-order", "2", "--beam-size", "4", "--rescore-with", str(partner), "--bundle", "--bundle-dir", str(models))
    assert "Second pass" in (tmp_path / "RESULTS.md").read_text()
    settings = json.loads(tuning_path(models / "toy.pt").read_text())
    search = beam_search_for(load_model(models / "toy.pt"))
    if "rescore" in settings:  # a weight above 0 read dev better
        assert settings["rescore"]["model"] == "partner.pt" and search.rescorer.partner.source == str(partner)
    else:
        assert search.rescorer is None
    assert evaluate(load_model(models / "toy.pt"), test, search=search).wer == pytest.approx(settings["an4_test"]["wer"], abs=0.01)
    # --half decides the shipped weights outright, whatever dev says.
    for half, flag in ((True, "yes"), (False, "no")):
        result = run_recipe(an4_root, tmp_path, "--resume", "--half", flag, "--bundle", "--bundle-dir", str(models))
        shipped = load_model(models / "toy.pt")
        assert shipped.metadata["float16"] is half and f"shipping float{16 if half else 32}" in result.stderr
        weights = torch.load(models / "toy.pt", weights_only=True)
        assert any(t.dtype == torch.float16 for t in weights["state_dict"].values()) is half, flag
    # The opt-in partners recorded for the model a bundle replaces, and those of models beside
    # it that name it as their partner, are chosen anew on dev: none keeps the weight (9, off
    # the grid) or the figures measured with the model it replaced.
    toy_settings = tuning_path(models / "toy.pt")
    write_json(toy_settings, {**json.loads(toy_settings.read_text()), "partners": {"partner.pt": {"weight": 9.0}}})
    other = models / "other.pt"
    other.write_bytes((BUNDLED_DIR / "streaming.pt").read_bytes())
    bundled = json.loads((BUNDLED_DIR / "streaming.lm.json").read_text())
    lm_files = {key: str(BUNDLED_DIR / bundled[key]) for key in ("lm", "lexicon")}
    write_json(tuning_path(other), {**bundled, **lm_files, "partners": {"toy.pt": {"weight": 9.0, "an4_test": {"wer": 1.0}}}})
    # --partner adds a pass to choose (here other.pt for the toy model), recorded on the same terms.
    result = run_recipe(an4_root, tmp_path, "--resume", "--lm-order", "2", "--beam-size", "4", "--bundle", "--bundle-dir", str(models), "--partner", "other.pt")
    for model_file, partner in ((models / "toy.pt", "partner.pt"), (other, "toy.pt"), (models / "toy.pt", "other.pt")):
        settings = json.loads(tuning_path(model_file).read_text())
        if partner not in settings.get("partners", {}):
            assert f"partner {partner!r} of {model_file.name}: AN4 dev reads no weight above 0 better" in result.stderr
            continue
        record = settings["partners"][partner]
        assert record["weight"] in RESCORE_WEIGHTS and record["weight"] > 0
        model = load_model(model_file)
        search = beam_search_for(model, rescore=str(models / partner))
        assert search.rescorer.config.weight == record["weight"]
        for split, utterances in (("an4_test", an4_utterances(an4_root, "test")), ("an4_dev", an4_dev_split(an4_root))):
            evaluated = evaluate(model, utterances, search=search)
            assert (evaluated.wer, evaluated.cer) == (pytest.approx(record[split]["wer"], abs=0.01), pytest.approx(record[split]["cer"], abs=0.01)), split


def assert_same_weights_and_trained_on(one_command: Path, two_commands: Path, start: Path) -> None:
    """The two model files hold the same weights, which differ from the model both started from."""
    assert differing_weights(one_command, two_commands) == []
    assert differing_weights(one_command, start) != []  # the later stage trained


def test_room_stage_is_the_robust_stage_run_on_with_rooms_in_one_command(an4_root, tmp_path):
    """`--room-epochs N` gives the weights of the two-command lineage of the bundled offline
    model (session 36): the two-stage recipe, then a one-stage run with rooms from its model."""
    three, then = tmp_path / "three", tmp_path / "then"
    for folder in (three, then):
        folder.mkdir()
    run_recipe(an4_root, three, "--room-epochs", "1")
    exp = three / "exp"
    assert torch.load(exp / "checkpoint.pt", weights_only=True)["train_config"]["lr"] == 5e-4
    assert load_model(exp / "best.pt").metadata["stage"] == "rooms" and load_model(exp / "robust" / "best.pt").metadata["stage"] == "robust"
    assert "rooms stage: 1 epochs on" in (three / "RESULTS.md").read_text()
    run_recipe(an4_root, then, "--init-from", str(exp / "robust" / "best.pt"), "--robust-epochs", "0", "--epochs", "1", "--lr", "5e-4", "--warmup-steps", "100", "--keep", "last", "--reverb-prob", "0.3")
    assert_same_weights_and_trained_on(exp / "best.pt", then / "exp" / "best.pt", exp / "robust" / "best.pt")


def test_a_second_cycle_is_the_two_stages_run_again_from_the_first_cycles_model(an4_root, tmp_path):
    """`--cycles 2` gives the weights of the bundled streaming model's two-command lineage
    (session 37): the two-stage recipe, then both stages again `--init-from` its model with
    --cycle-epochs clean epochs at --cycle-lr."""
    both, then = tmp_path / "both", tmp_path / "then"
    for folder in (both, then):
        folder.mkdir()
    run_recipe(an4_root, both, "--cycles", "2", "--cycle-epochs", "1")
    exp = both / "exp"
    assert [load_model(exp / sub / "best.pt").metadata["stage"] for sub in ("robust", "cycle2/clean", ".")] == ["robust", "clean 2", "robust 2"]
    assert torch.load(exp / "cycle2" / "clean" / "checkpoint.pt", weights_only=True)["train_config"]["lr"] == 1e-3
    run_recipe(an4_root, then, "--init-from", str(exp / "robust" / "best.pt"), "--epochs", "1", "--lr", "1e-3")
    assert_same_weights_and_trained_on(exp / "best.pt", then / "exp" / "best.pt", exp / "robust" / "best.pt")


def test_half_restarts_start_the_second_cycle_from_the_float16_file_a_bundle_would_ship(an4_root, tmp_path):
    """`--cycles 2 --half-restarts` gives the weights of the two-command lineage whose second
    command began from a shipped (float16) file, as the bundled streaming model's did: rounding
    the start is the one thing that differs from `--cycles 2` without it."""
    both, then = tmp_path / "both", tmp_path / "then"
    for folder in (both, then):
        folder.mkdir()
    run_recipe(an4_root, both, "--cycles", "2", "--cycle-epochs", "1", "--half-restarts")
    exp = both / "exp"
    start = exp / "cycle2" / "clean" / "start-float16.pt"
    assert all(t.dtype != torch.float32 for t in torch.load(start, weights_only=True)["state_dict"].values())
    assert re.search(r"clean 2 stage: 1 epochs on \d+ utterances from the stage before rounded to float16", (both / "RESULTS.md").read_text())
    shipped = then / "shipped.pt"
    save_model(shipped, load_model(exp / "robust" / "best.pt"), half=True)  # as --bundle ships the first cycle's model
    run_recipe(an4_root, then, "--init-from", str(shipped), "--epochs", "1", "--lr", "1e-3")
    assert_same_weights_and_trained_on(exp / "best.pt", then / "exp" / "best.pt", shipped)
