"""Manifests, the LibriSpeech and Common Voice preparation scripts and the manifest recipe,
on small corpora made here in those corpora's layouts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.data import read_manifest
from speechrnn.model import load_model

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def run_script(script: Path, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def noise(seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)


def test_manifest_paths_are_relative_to_it_and_transcripts_normalised(tmp_path):
    sf.write(str(tmp_path / "a.wav"), noise(0.5), 16000)
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "Hello, World! It's 'fine'.\tStraße"}) + "\n\n")
    (utterance,) = read_manifest(manifest)
    assert utterance.audio == str(tmp_path / "a.wav")
    assert utterance.text == "hello world it's fine strasse"  # quotes are not spelled; a tab parts words
    assert utterance.duration == pytest.approx(0.5)  # from the file, the manifest having none
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "ok", "duration": "0.5"}) + "\n")
    assert read_manifest(manifest)[0].duration == 0.5  # a number in a string is a number
    bad_rows = [{"text": "no audio"}, {"audio": "a.wav", "text": None}, {"audio": "a.wav", "text": ["a", "b"]}, {"audio": 3, "text": "ok"}, ["a.wav", "ok"]]
    for row in bad_rows:
        manifest.write_text(json.dumps({"audio": "a.wav", "text": "ok"}) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(ValueError, match=r"set.jsonl:2: not a manifest line"):
            read_manifest(manifest)
    manifest.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"set.jsonl:1: not a JSON object"):
        read_manifest(manifest)
    for row in ({"audio": "gone.wav", "text": "no file"}, {"audio": "gone.wav", "text": "no file", "duration": 2.0}):
        manifest.write_text(json.dumps(row) + "\n")
        with pytest.raises(ValueError, match=r"set.jsonl:1: no such audio file: .*gone.wav"):
            read_manifest(manifest)
    for duration in ("2,3", float("nan"), -1.0, True, [1]):
        manifest.write_text(json.dumps({"audio": "a.wav", "text": "ok", "duration": duration}) + "\n")
        with pytest.raises(ValueError, match=r"set.jsonl:1: duration .* is not a number of seconds"):
            read_manifest(manifest)
    # Every bad line is found in one read: the first five named, and how many.
    good = json.dumps({"audio": "a.wav", "text": "ok"})
    lines = [good, "{not json", good, json.dumps({"audio": "gone.wav", "text": "x"})] + [json.dumps({"audio": "a.wav", "text": "ok", "duration": -1})] * 5
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"^\S*set.jsonl: 7 bad lines: \S*set.jsonl:2: not a JSON object .*; \S*set.jsonl:4: no such audio file: .*set.jsonl:7: duration -1 .*; and 2 more$"):
        read_manifest(manifest)
    manifest.write_bytes(b'{"audio": "a.wav", "text": "caf\xe9"}\n')  # Latin-1, not UTF-8
    with pytest.raises(ValueError, match=r"set.jsonl: not UTF-8"):
        read_manifest(manifest)
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "Room 101 & 東京, please"}) + "\n")
    with pytest.warns(UserWarning, match=r"set.jsonl: transcripts hold characters the models cannot spell \('[01&東京]{5}'"):
        assert read_manifest(manifest)[0].text == "room please"


def test_librispeech_folders_become_manifests(tmp_path):
    root = tmp_path / "LibriSpeech"
    chapter = root / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    sf.write(str(chapter / "84-121123-0000.flac"), noise(1.0), 16000)
    sf.write(str(chapter / "84-121123-0001.flac"), noise(0.5), 16000)
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n84-121123-0002 GONE\n")
    (root / "test-clean" / "61" / "70968").mkdir(parents=True)
    result = run_script(RECIPES / "librispeech" / "prepare.py", root, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "84-121123-0002.flac: left out" in result.stderr  # listed, but no such file
    dev = read_manifest(tmp_path / "out" / "dev-clean.jsonl")
    assert [(u.text, round(u.duration, 2), u.speaker) for u in dev] == [("go do you hear", 1.0, "84"), ("but in less than five minutes", 0.5, "84")]
    assert read_manifest(tmp_path / "out" / "test-clean.jsonl") == []
    missing = run_script(RECIPES / "librispeech" / "prepare.py", root, "--out", tmp_path / "out", "--subsets", "train-clean-100")
    assert missing.returncode == 2 and "train-clean-100" in missing.stderr


def test_common_voice_splits_become_manifests_without_unspellable_sentences(tmp_path):
    root = tmp_path / "en"
    (root / "clips").mkdir(parents=True)
    for name, seconds in (("a.mp3", 1.0), ("b.mp3", 0.5), ("c.mp3", 0.5), ("d.mp3", 0.5)):
        sf.write(str(root / "clips" / name), noise(seconds, 48000), 48000, format="MP3")
    rows = [
        ("u1", "a.mp3", "Café au lait, please."),
        ("u2", "b.mp3", "It was 1990."),
        ("u3", "c.mp3", "Tokyo is 東京."),
        ("u4", "d.mp3", "Fine!"),
        ("u5", "gone.mp3", "Nobody kept this clip."),
    ]
    header = "client_id\tpath\tsentence\tup_votes\n"
    (root / "train.tsv").write_text(header + "".join(f"{c}\t{p}\t{s}\t2\n" for c, p, s in rows))
    (root / "clip_durations.tsv").write_text("clip\tduration[ms]\na.mp3\t1234\n")
    result = run_script(RECIPES / "commonvoice" / "prepare.py", root, "--out", tmp_path / "out", "--splits", "train")
    assert result.returncode == 0, result.stderr
    assert "gone.mp3: left out" in result.stderr
    assert "2 digits, symbols or letters outside a-z" in result.stdout and "1 missing or unreadable clip" in result.stdout
    utterances = read_manifest(tmp_path / "out" / "train.jsonl")
    assert [(Path(u.audio).name, u.text, u.speaker) for u in utterances] == [("a.mp3", "cafe au lait please", "u1"), ("d.mp3", "fine", "u4")]
    assert utterances[0].duration == 1.234  # from clip_durations.tsv
    assert 0.4 < utterances[1].duration < 0.7  # from the MP3 itself
    not_cv = run_script(RECIPES / "commonvoice" / "prepare.py", tmp_path / "out", "--out", tmp_path / "x")
    assert not_cv.returncode == 2 and "not a Common Voice language folder" in not_cv.stderr
    (root / "dev.tsv").write_text("client_id\tpath\n" "u1\ta.mp3\n")  # no sentence column
    no_column = run_script(RECIPES / "commonvoice" / "prepare.py", root, "--out", tmp_path / "x", "--splits", "dev")
    assert no_column.returncode == 2 and "dev.tsv: no column sentence" in no_column.stderr


def test_manifest_recipe_trains_tunes_an_lm_and_reports(speech_dir, tmp_path):
    folder, phrases = speech_dir
    manifest = tmp_path / "set.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(folder / f"{name}.wav"), "text": text.upper()}) + "\n" for name, text in phrases.items()))
    exp = tmp_path / "exp"
    args = ["--train", manifest, "--dev", manifest, "--test", manifest, "--exp", exp, "--layers", "2", "--hidden", "16", "--epochs", "2", "--threads", "1", "--lm-order", "2", "--beam-size", "8", "--inter-ctc-weight", "0.3", "--distill-from", "offline", "--distill-weight", "0.2"]
    result = run_script(RECIPES / "manifest" / "run.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    results = (exp / "RESULTS.md").read_text()
    for row in ("| dev | 4 |", "| set | 4 |", "| dev + LM | 4 |", "| set + LM | 4 |"):
        assert row in results
    checkpoint = torch.load(exp / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    # --inter-ctc-weight reaches the training loss, below the last of the two layers by default.
    assert (checkpoint["train_config"]["inter_ctc_weight"], checkpoint["train_config"]["inter_ctc_layer"]) == (0.3, 1)
    # So does distillation from the bundled offline model (the teacher), its frames delayed by the default 3.
    assert (checkpoint["train_config"]["distill_weight"], checkpoint["train_config"]["distill_shift"]) == (0.2, 3)
    model = load_model(exp / "best.pt")
    assert model.config.bidirectional and model.config.level_db is not None
    assert json.loads((exp / "best.lm.json").read_text())["beam_size"] == 8
    # The model file is what `speechrnn transcribe --model` takes, with its tuned LM.
    transcribed = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", "--model", str(exp / "best.pt"), "--format", "jsonl", str(folder / "yes.wav")], capture_output=True, text=True, timeout=300)
    assert transcribed.returncode == 0, transcribed.stderr
    assert json.loads(transcribed.stdout)["audio"].endswith("yes.wav")
