"""The ``speechrnn`` command end to end, in a subprocess, with the bundled offline model."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from conftest import write_wav
from speechrnn.audio import load_audio, resample

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechrnn", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def jsonl(speech_dir):
    folder, phrases = speech_dir
    paths = [str(folder / f"{name}.wav") for name in phrases]
    result = run_cli("transcribe", "--format", "jsonl", *paths)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return paths, phrases, rows


def test_jsonl_has_one_object_per_file_and_recognises_the_speech(jsonl):
    paths, phrases, rows = jsonl
    assert [row["audio"] for row in rows] == paths
    for row in rows:
        assert set(row) == {"audio", "text", "duration", "words"}
        assert row["duration"] > 0.3
        assert [w["word"] for w in row["words"]] == row["text"].split()
        for word in row["words"]:
            assert 0 <= word["start"] < word["end"] <= row["duration"] + 0.05
            assert 0 < word["confidence"] <= 1
    # The bundled model was trained with synthetic voices mixed in, but never on these files.
    assert jiwer.wer(list(phrases.values()), [row["text"] for row in rows]) <= 0.25


def test_text_srt_and_vtt_agree_with_jsonl(jsonl, tmp_path):
    paths, _, rows = jsonl
    texts = {row["audio"]: row["text"] for row in rows}
    result = run_cli("transcribe", "--format", "text", *paths)
    assert result.returncode == 0, result.stderr
    assert dict(line.split("\t") for line in result.stdout.splitlines()) == texts

    for fmt, suffix in (("srt", ".srt"), ("vtt", ".vtt"), ("text", ".txt"), ("jsonl", ".json")):
        out = tmp_path / fmt
        result = run_cli("transcribe", "--format", fmt, "--output-dir", str(out), os.path.dirname(paths[0]))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        for path in paths:
            content = (out / (os.path.splitext(os.path.basename(path))[0] + suffix)).read_text()
            if fmt == "jsonl":
                assert json.loads(content)["text"] == texts[path]
                continue
            if fmt == "text":
                assert content == texts[path] + "\n"
                continue
            if fmt == "vtt":
                assert content.startswith("WEBVTT\n\n")
            stamp = r"\d\d:\d\d:\d\d[.,]\d\d\d"
            cue_text = [line for line in content.splitlines() if line and not re.fullmatch(rf"\d+|WEBVTT|{stamp} --> {stamp}", line)]
            assert " ".join(cue_text) == texts[path]
            assert len(re.findall(stamp, content)) == 2 * len(cue_text)


def test_bad_inputs_are_reported_while_the_rest_is_transcribed(speech_dir, tmp_path):
    folder, phrases = speech_dir
    good = str(folder / "enter.wav")
    samples, rate = sf.read(good, dtype="float32")
    stereo_8k = write_wav(tmp_path / "stereo8k.wav", np.stack([resample(samples, rate, 8000)] * 2, axis=1), 8000)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello, I am not a sound file\n" * 10)
    (tmp_path / "truncated.wav").write_bytes(open(good, "rb").read()[:30])
    short = write_wav(tmp_path / "short.wav", samples[: rate // 10], rate)
    inputs = [good, str(tmp_path / "empty.wav"), str(tmp_path / "text.wav"), str(tmp_path / "truncated.wav"),
              str(stereo_8k), str(short), str(tmp_path / "missing.wav")]
    result = run_cli("transcribe", "--format", "jsonl", *inputs)
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["audio"] for row in rows] == inputs
    errors = {row["audio"]: row["error"] for row in rows if "error" in row}
    assert set(errors) == set(inputs) - {good, str(stereo_8k)}
    for path, message in errors.items():
        assert message.startswith(path + ": ")
    assert "empty" in errors[inputs[1]] and "not a readable audio file" in errors[inputs[2]]
    assert "too short" in errors[str(short)] and "no such file" in errors[inputs[-1]]
    durations = {row["audio"]: row["duration"] for row in rows if "text" in row}
    assert durations[str(stereo_8k)] == pytest.approx(durations[good], abs=0.01)
    assert all(f"speechrnn: error: {path}" in result.stderr for path in errors)


def test_wideband_stereo_at_48k_is_recognised_like_the_original(speech_dir, tmp_path):
    folder, phrases = speech_dir
    good = str(folder / "enter.wav")
    samples, rate = sf.read(good, dtype="float32")
    stereo_48k = write_wav(tmp_path / "stereo48k.wav", np.stack([resample(samples, rate, 48000)] * 2, axis=1), 48000)
    result = run_cli("transcribe", good, str(stereo_48k))
    assert result.returncode == 0, result.stderr
    texts = [line.split("\t")[1] for line in result.stdout.splitlines()]
    assert texts[0] == texts[1]


def test_narrowband_8k_audio_is_recognised(speech_dir, tmp_path):
    """Telephone-band audio (the recipe's 8 kHz round-trip augmentation), greedy and with the LM."""
    folder, phrases = speech_dir
    samples, rate = sf.read(str(folder / "enter.wav"), dtype="float32")
    narrow = write_wav(tmp_path / "narrow.wav", resample(samples, rate, 8000), 8000)
    for lm in ("none", "default"):
        result = run_cli("transcribe", "--lm", lm, str(narrow))
        assert jiwer.wer(phrases["enter"], result.stdout.strip()) <= 0.34, (lm, result.stdout)


def test_mains_hum_is_named_and_remove_hum_takes_it_out(speech_dir, tmp_path):
    folder, phrases = speech_dir
    samples, rate = sf.read(folder / "enter.wav", dtype="float32")
    t = np.arange(samples.size) / rate
    hummed = str(write_wav(tmp_path / "hummed.wav", samples + sum(0.01 / k * np.sin(2 * np.pi * k * 60 * t) for k in (1, 2, 3)), rate))
    as_it_is = run_cli("transcribe", hummed)
    assert as_it_is.returncode == 0 and f"warning: {hummed}: mains hum at 60 Hz (" in as_it_is.stderr and "--remove-hum 60 takes it out" in as_it_is.stderr
    assert "mains hum" not in run_cli("transcribe", str(folder / "enter.wav")).stderr
    without = run_cli("transcribe", "--remove-hum", "60", hummed)
    assert without.returncode == 0 and "mains hum" not in without.stderr
    assert jiwer.wer(phrases["enter"], without.stdout.strip()) <= 0.34
    # A stream says so after its first second, once; --remove-hum streams it as the file reads.
    streamed = run_cli("live", "--from-file", hummed, "--no-endpoint", "--lm", "none")
    assert streamed.stderr.count("warning: the input: mains hum at 60 Hz") == 1
    streamed = run_cli("live", "--from-file", hummed, "--no-endpoint", "--lm", "none", "--remove-hum", "60", "--remove-dc")
    assert "mains hum" not in streamed.stderr
    assert streamed.stdout.strip() == run_cli("transcribe", "--model", "streaming", "--lm", "none", "--remove-hum", "60", "--remove-dc", hummed).stdout.strip()
    bad = run_cli("transcribe", "--remove-hum", "400", hummed)
    assert bad.returncode == 2 and "--remove-hum: 400 Hz is no mains frequency (50 or 60)" in bad.stderr


def test_a_dc_offset_is_named_and_remove_dc_takes_it_out(speech_dir, tmp_path):
    folder, _ = speech_dir
    clean = [str(folder / f"{name}.wav") for name in ("enter", "erase")]
    shifted = [str(write_wav(tmp_path / f"shifted{i}.wav", sf.read(path, dtype="float32")[0] + 0.05, sf.info(path).samplerate)) for i, path in enumerate(clean)]
    as_they_are = run_cli("transcribe", *shifted)
    assert as_they_are.returncode == 0
    for path in shifted:
        assert f"warning: {path}: a DC offset of +0.05" in as_they_are.stderr
    expected = [line.split("\t")[1] for line in run_cli("transcribe", *clean).stdout.splitlines()]
    without = run_cli("transcribe", "--remove-dc", *shifted)
    assert without.returncode == 0 and "DC offset" not in without.stderr
    assert [line.split("\t")[1] for line in without.stdout.splitlines()] == expected
    # A stream says so after its first second, once; --remove-dc streams it as the file reads.
    streamed = run_cli("live", "--from-file", shifted[0], "--no-endpoint", "--lm", "none")
    assert streamed.stderr.count("warning: the input: a DC offset of +0.05") == 1
    streamed = run_cli("live", "--from-file", shifted[0], "--no-endpoint", "--lm", "none", "--remove-dc")
    assert "DC offset" not in streamed.stderr
    assert streamed.stdout.strip() == run_cli("transcribe", "--model", "streaming", "--lm", "none", "--remove-dc", shifted[0]).stdout.strip()


def test_unknown_model_is_a_clear_error(speech_dir):
    result = run_cli("transcribe", "--model", "nonexistent", str(speech_dir[0] / "yes.wav"))
    assert result.returncode == 2 and "no bundled model" in result.stderr


def test_options_that_cannot_work_are_refused_before_any_file_is_transcribed(speech_dir, tmp_path, capsys):
    from speechrnn.cli import main

    wav = str(speech_dir[0] / "yes.wav")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "not-a-model.pt").write_text("hello")
    for argv, says in (
        (["transcribe", "--batch-size", "0", wav], "the batch size must be 1 or more, got 0"),
        (["transcribe", "--output-dir", str(tmp_path / "a-file"), wav], "a-file: is a file, not a folder"),
        (["transcribe", "--hot-word", "yes:nan", wav], "'nan' is not a finite number"),
        (["transcribe", "--hot-word", "yes日", wav], "words of the model's letters"),
        (["transcribe", "--lm-weight", "inf", wav], "beam search weights must be finite numbers, got lm_weight inf"),
        (["transcribe", "--nbest", "0", wav], "n-best count must be 1 or more"),
        (["transcribe", "--model", str(tmp_path), wav], "is a directory, not a model file"),
        (["transcribe", "--model", str(tmp_path / "not-a-model.pt"), wav], "not a readable speechrnn model file ("),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "weights_only=False" not in err, (argv, err)
    with pytest.raises(SystemExit):
        main(["--threads", "0", "transcribe", wav])
    assert "--threads: the thread count must be a whole number, 1 or more, got 0" in capsys.readouterr().err
    from speechrnn.streaming import set_threads

    with pytest.raises(ValueError, match="got -1"):  # (the library's own check, which the option's is)
        set_threads(-1)
    # Options greedy decoding has no use for are named in a warning, not silently dropped.
    assert main(["transcribe", "--lm", "none", "--beam-size", "8", "--lm-weight", "2", "--nbest", "3", wav]) == 0
    err = capsys.readouterr().err
    assert "--lm-weight, --beam-size set a beam search; greedy decoding (--lm none) has none, so they are not used" in err
    assert "--nbest lists transcripts in --format jsonl only" in err


def test_a_word_after_silence_starts_where_its_speech_does(speech_dir):
    # The bidirectional model emits the first letter at the input's first frame when the
    # input starts with silence; the word's start is moved to its speech.
    import torch

    from speechrnn.model import load_model
    from speechrnn.transcribe import recognize

    model = load_model("offline")
    speech = load_audio(speech_dir[0] / "yes.wav")
    for silence in (0.0, 2.0):
        wave = torch.from_numpy(np.concatenate([np.zeros(int(silence * 16000), np.float32), speech]))
        (hyp,) = recognize(model, [wave])
        assert hyp.text == "yes"
        assert silence - 0.05 <= hyp.words[0].start <= silence + 0.3 < hyp.words[0].end


def test_each_recording_is_reported_once_when_all_its_pieces_are_decoded(speech_dir):
    import torch

    from speechrnn.model import load_model
    from speechrnn.segment import split_at_pauses
    from speechrnn.transcribe import recognize, segment_config

    model = load_model("offline")
    folder, phrases = speech_dir
    pause = np.zeros(12000, np.float32)
    long = np.concatenate([part for _ in range(3) for name in phrases for part in (load_audio(folder / f"{name}.wav"), pause)])
    assert len(split_at_pauses(long, segment_config(model))) > 1  # (read in pieces)
    waves = [torch.from_numpy(long), torch.from_numpy(load_audio(folder / "yes.wav"))]
    done = []
    hyps = recognize(model, waves, on_recognized=done.append)
    assert sorted(done) == [0, 1] and [h.text for h in hyps] == [h.text for h in recognize(model, waves)]


def test_a_long_file_is_read_in_pieces_with_times_from_its_start(speech_dir, tmp_path):
    """Four phrases, each three times, with pauses: 30 s or so, over the 12 s limit."""
    from speechrnn.audio import load_audio

    folder, phrases = speech_dir
    pause = np.zeros(12000, np.float32)
    order = [name for _ in range(3) for name in phrases]
    wave = np.concatenate([part for name in order for part in (load_audio(folder / f"{name}.wav"), pause)])
    assert len(wave) > 20 * 16000
    path = tmp_path / "long.wav"
    write_wav(path, wave, 16000)
    rows = {}
    for limit in ("12", "0"):
        result = run_cli("transcribe", "--format", "jsonl", "--max-segment", limit, str(path))
        assert result.returncode == 0, result.stderr
        rows[limit] = json.loads(result.stdout)
    reference = " ".join(phrases[name] for name in order)
    row = rows["12"]
    assert jiwer.wer(reference, row["text"]) <= 0.25
    starts = [w["start"] for w in row["words"]]
    assert starts == sorted(starts) and starts[-1] > 20  # times run on across the pieces
    assert row["words"][-1]["end"] <= row["duration"] + 0.05
    assert jiwer.wer(reference, rows["0"]["text"]) <= 0.5  # read whole: still text, and allowed
    for limit in ("-1", "0.1", "nan", "inf"):  # none of these cuts a file into pieces
        bad = run_cli("transcribe", "--max-segment", limit, str(path))
        assert bad.returncode == 2 and "--max-segment must be 0 (read files whole) or at least 2 seconds" in bad.stderr, bad.stderr


def test_subtitles_of_several_files_need_an_output_dir(jsonl):
    paths, _, _ = jsonl
    for fmt in ("srt", "vtt"):
        result = run_cli("transcribe", "--format", fmt, *paths)
        assert result.returncode == 2 and "needs --output-dir" in result.stderr and result.stdout == ""
    result = run_cli("transcribe", "--format", "srt", paths[0])  # one file: its subtitles on stdout
    assert result.returncode == 0 and result.stdout.startswith("1\n00:00:")


def test_evaluate_a_manifest_with_details_and_an_lm_missing_words(speech_dir, tmp_path):
    folder, phrases = speech_dir
    manifest = tmp_path / "set.jsonl"
    lines = [json.dumps({"audio": f"{folder / name}.wav", "text": text}) + "\n" for name, text in phrases.items()]
    # A reference with no words (here only a noise tag) has none to score: left out, counted.
    manifest.write_text("".join(lines) + json.dumps({"audio": f"{folder / next(iter(phrases))}.wav", "text": "[noise]"}) + "\n")
    details = tmp_path / "details.jsonl"
    result = run_cli("evaluate", "--manifest", str(manifest), "--lm", "none", "--details", str(details))
    assert result.returncode == 0, result.stderr
    assert f"warning: {manifest}: 1 of {len(phrases) + 1} utterances have no words once normalised and are left out" in result.stderr
    manifest.write_text("".join(lines))
    summary = json.loads(result.stdout)
    assert summary["decoding"] == "greedy" and summary["n"] == len(phrases) and summary["data"] == str(manifest)
    rows = [json.loads(line) for line in details.read_text().splitlines()]
    assert [row["reference"] for row in rows] == list(phrases.values())
    hypotheses = [row["hypothesis"] for row in rows]
    assert summary["wer"] == pytest.approx(100 * jiwer.wer(list(phrases.values()), hypotheses), abs=0.01)
    assert summary["cer"] == pytest.approx(100 * jiwer.cer(list(phrases.values()), hypotheses), abs=0.01)

    # An LM built from text that lacks some of the set's words: a warning that counts them.
    texts = tmp_path / "texts.txt"
    texts.write_text("enter five two\nyes\nerase seven\n")
    assert run_cli("lm", "build", str(texts), "-o", str(tmp_path / "small.arpa"), "--order", "2").returncode == 0
    result = run_cli("evaluate", "--manifest", str(manifest), "--lm", str(tmp_path / "small.arpa"))
    assert result.returncode == 0, result.stderr
    known = set(texts.read_text().split())
    words = " ".join(phrases.values()).split()
    missing = sorted({w for w in words if w not in known})  # the spelled letters: 11 of them
    share = 100 * sum(w not in known for w in words) / len(words)
    assert f"warning: {share:.1f}% of the words of {manifest} are not in" in result.stderr
    assert f"({len(missing)} distinct: {' '.join(missing[:10])} ...)" in result.stderr  # the first ten named
    assert json.loads(result.stdout)["decoding"]["lm"].endswith("small.arpa")


def test_the_readme_demo_transcribes_its_sample_correctly(speech_dir):
    """The README's main job: scripts/demo.sh has espeak-ng say a phrase and the bundled model
    read it; what it heard must be what was said."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    said = re.search(r"^espeak-ng said: +(.+)$", result.stdout, re.M).group(1)
    heard = re.search(r"^speechrnn heard: +(.+)$", result.stdout, re.M).group(1)
    assert heard == said


def test_the_readme_python_example_runs(speech_dir, tmp_path, capsys):
    """The README's "From Python" block, run as written: its file is a generated phrase and
    its microphone the same phrase at 44.1 kHz in 100 ms chunks."""
    folder, phrases = speech_dir
    readme = README.read_text()
    code = re.search(r"From Python:\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert '"talk.wav"' in code and "microphone_chunks()" in code
    recorded, rate = sf.read(str(folder / "enter.wav"), dtype="float32")
    samples = resample(recorded, rate, 44100)

    def microphone_chunks():
        return ((samples[start : start + 4410], 44100) for start in range(0, len(samples), 4410))

    exec(code.replace('"talk.wav"', repr(str(folder / "enter.wav"))), {"microphone_chunks": microphone_chunks})
    lines = capsys.readouterr().out.splitlines()
    assert jiwer.wer(phrases["enter"], lines[0]) <= 0.34  # the file, read offline
    assert lines[1:-1] and all(line.split(" ", 1)[0] in ("partial", "final") for line in lines[1:-1])
    assert jiwer.wer(phrases["enter"], lines[-1]) <= 0.34  # the stream's final


def test_the_readme_at_a_glance_quotes_the_bundled_models_recorded_figures():
    """The README's At a glance rows hold each bundled model's recorded AN4 test WERs (greedy in
    the model file, with the LM in its settings file; tests/test_an4.py recomputes both) and its
    parameter count, so a new bundle cannot leave them stale."""
    from speechrnn.decoding import read_settings, tuning_path
    from speechrnn.model import load_model

    readme = README.read_text()
    glance = readme[readme.index("## At a glance") : readme.index("## Usage")]
    for name in ("offline", "streaming"):
        model = load_model(name)
        row = re.search(rf"^\| `{name}` \(([^|]*)\) \| ([\d.]+)% \| ([\d.]+)% \|", glance, re.M)
        assert row is not None, f"no At a glance row for {name}"
        settings = read_settings(tuning_path(model.source))
        assert float(row.group(2)) == model.metadata["an4_test_wer"]
        assert float(row.group(3)) == settings["an4_test"]["wer"]
        assert f"{model.n_params / 1e6:.2f} M" in row.group(1)


def test_inputs_with_the_same_name_get_numbered_outputs(speech_dir, tmp_path):
    folder, phrases = speech_dir
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "take.wav").write_bytes((folder / "yes.wav").read_bytes())
    (tmp_path / "c" / "take-2.wav").write_bytes((folder / "enter.wav").read_bytes())  # a stem that is already taken by a suffix
    out = tmp_path / "out"
    result = run_cli("transcribe", "--output-dir", str(out), str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())  # four outputs: none overwrote another
    assert len(names) == 4 and {"take.txt", "take-2.txt", "take-3.txt"} < set(names)
    texts = [p.read_text().strip() for p in out.iterdir()]
    assert len(set(texts)) == 2 and sorted(texts.count(t) for t in set(texts)) == [1, 3]  # "enter" once, "yes" three times
    # Found in a folder, an input keeps its place under it: names that do not depend on what
    # else was given or failed.
    (tmp_path / "c" / "day1").mkdir()
    (tmp_path / "c" / "day1" / "take.wav").write_bytes((folder / "enter.wav").read_bytes())
    (tmp_path / "c" / "day1" / "bad.wav").write_text("not audio")
    mirrored = tmp_path / "mirrored"
    result = run_cli("transcribe", "--format", "srt", "--output-dir", str(mirrored), str(tmp_path / "c"), str(folder / "yes.wav"))
    assert result.returncode == 1 and "bad.wav" in result.stderr
    assert sorted(p.relative_to(mirrored).as_posix() for p in mirrored.rglob("*.srt")) == ["day1/take.srt", "take-2.srt", "take.srt", "yes.srt"]
    assert "enter" in (mirrored / "day1" / "take.srt").read_text()


def test_version_names_the_package_and_the_torch_it_runs_on():
    import importlib.metadata

    import torch
    import torchaudio

    import speechrnn

    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"speechrnn {speechrnn.__version__} (torch {torch.__version__}, torchaudio {torchaudio.__version__})"
    assert importlib.metadata.version("speechrnn") == speechrnn.__version__  # setup.cfg reads the version from the package


def test_dash_reads_one_file_from_standard_input(jsonl, tmp_path):
    import struct

    paths, _, rows = jsonl
    piped = bytearray(open(paths[0], "rb").read())
    piped[4:8] = piped[40:44] = struct.pack("<I", 0xFFFFFFFF)  # the sizes a tool writing to a pipe leaves unknown (ffmpeg's)
    assert piped[36:40] == b"data"  # espeak-ng's plain 44-byte header: the data size is where it was patched

    def transcribe(stdin: bytes, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", *args], input=stdin, capture_output=True, timeout=300)

    result = transcribe(bytes(piped), "--format", "jsonl", "-", paths[1])
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [row["audio"] for row in got] == ["-", paths[1]]
    assert (got[0]["text"], got[0]["duration"]) == (rows[0]["text"], rows[0]["duration"])
    assert got[1]["text"] == rows[1]["text"]
    # Not audio, or nothing piped: the documented error for "-" while the other file is transcribed.
    for stdin, reason in ((b"not audio at all", "not a readable audio file"), (b"", "no bytes piped in")):
        result = transcribe(stdin, "--format", "jsonl", paths[1], "-")
        assert result.returncode == 1
        got = [json.loads(line) for line in result.stdout.decode().splitlines()]
        assert got[0]["text"] == rows[1]["text"]
        assert got[1]["audio"] == "-" and got[1]["error"].startswith("- (standard input): " + reason), got[1]
    # Subtitles for standard input go to a file named after it.
    result = transcribe(bytes(piped), "--format", "srt", "--output-dir", str(tmp_path), "-")
    assert result.returncode == 0, result.stderr
    assert rows[0]["text"].split()[0] in (tmp_path / "stdin.srt").read_text()
