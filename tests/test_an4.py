"""The AN4 data pipeline and the bundled models' published figures (needs the corpus)."""
from __future__ import annotations

import json
import random

import pytest
import torch

import speechrnn
from conftest import random_chunks
from speechrnn.audio import load_audio
from speechrnn.data import an4_utterances, speaker_split
from speechrnn.decoding import beam_search_for, tuning_path
from speechrnn.evaluate import evaluate
from speechrnn.model import BUNDLED_DIR, load_model
from speechrnn.streaming import StreamingRecognizer
from speechrnn.transcribe import recognize


def test_an4_reader_and_speaker_disjoint_dev(an4_root):
    train = an4_utterances(an4_root, "train")
    test = an4_utterances(an4_root, "test")
    assert (len(train), len(test)) == (948, 130)
    assert test[0].text == "rubout g m e f three nine" and test[0].speaker == "fcaw"
    assert all(u.text and u.duration > 0.3 for u in train + test)
    fit, dev = speaker_split(train, 6, seed=0)
    assert {u.speaker for u in fit}.isdisjoint({u.speaker for u in dev})
    assert {u.speaker for u in train}.isdisjoint({u.speaker for u in test})


@pytest.mark.parametrize("name", ["offline", "streaming"])
def test_bundled_model_reproduces_its_published_test_wer(an4_root, name):
    """The WER stored in the bundled model (and quoted in the README) is recomputed here."""
    if not (BUNDLED_DIR / f"{name}.pt").is_file():
        pytest.skip(f"no bundled {name} model yet (recipes/an4/run.py --bundle)")
    model = load_model(name)
    result = evaluate(model, an4_utterances(an4_root, "test"))
    assert result.wer == pytest.approx(model.metadata["an4_test_wer"], abs=0.01)
    assert result.cer == pytest.approx(model.metadata["an4_test_cer"], abs=0.01)


@pytest.mark.parametrize("name", ["offline", "streaming"])
def test_bundled_model_with_its_lm_reproduces_its_published_test_wer(an4_root, name):
    """The same for beam search with the bundled AN4 LM and the model's tuned weights."""
    if not (BUNDLED_DIR / f"{name}.lm.json").is_file():
        pytest.skip(f"no bundled {name} model with a tuned LM yet (recipes/an4/run.py --bundle)")
    model = load_model(name)
    search = beam_search_for(model)
    assert search is not None and search.lexicon is not None
    result = evaluate(model, an4_utterances(an4_root, "test"), search=search)
    published = json.loads(tuning_path(model.source).read_text())["an4_test"]
    assert result.wer == pytest.approx(published["wer"], abs=0.01)
    assert result.cer == pytest.approx(published["cer"], abs=0.01)


def test_evaluate_reads_the_recipes_dev_split_as_the_tuning_did(an4_root, capsys):
    """`speechrnn evaluate --split dev` decodes the dev split recipes/an4 holds out of train, the
    one the LM weights were tuned on: the streaming model's recorded dev figures."""
    from speechrnn.cli import main

    assert main(["evaluate", "--model", "streaming", "--an4", str(an4_root), "--split", "dev"]) == 0
    result = json.loads(capsys.readouterr().out)
    published = json.loads(tuning_path(load_model("streaming").source).read_text())["an4_dev"]
    assert result["n"] == 79 and result["data"].startswith("AN4 dev split of train")
    assert result["wer"] == pytest.approx(published["wer"], abs=0.01)
    assert result["cer"] == pytest.approx(published["cer"], abs=0.01)


def test_lm_is_built_from_training_text_only(an4_root):
    """The bundled LMs must not have seen AN4 test sentences they were not also trained on."""
    from speechrnn.lm import read_arpa

    arpas = sorted(BUNDLED_DIR.glob("*.arpa"))
    if not arpas:
        pytest.skip("no bundled AN4 LM yet")
    train_words = {w for u in an4_utterances(an4_root, "train") for w in u.text.split()}
    # Test-only words exist in AN4 and must be unknown to the LMs.
    test_only = {w for u in an4_utterances(an4_root, "test") for w in u.text.split()} - train_words
    assert test_only
    for arpa in arpas:
        lm = read_arpa(arpa)
        assert lm.vocabulary <= train_words, arpa.name
        assert not (test_only & lm.vocabulary), arpa.name


def test_bundled_lm_is_rebuilt_by_lm_build_from_the_training_split(an4_root, tmp_path, capsys):
    """`speechrnn lm build --an4-train` reproduces each bundled AN4 LM and its lexicon."""
    from speechrnn.cli import main

    arpas = sorted(BUNDLED_DIR.glob("an4-*gram.arpa"))
    if not arpas:
        pytest.skip("no bundled AN4 LM yet")
    for arpa in arpas:
        order = arpa.name.removeprefix("an4-").removesuffix("gram.arpa")
        rebuilt = tmp_path / arpa.name
        assert main(["lm", "build", "--an4-train", str(an4_root), "-o", str(rebuilt), "--order", order]) == 0
        assert json.loads(capsys.readouterr().out)["sentences"] == 869
        assert rebuilt.read_bytes() == arpa.read_bytes(), arpa.name
        assert rebuilt.with_suffix("").with_suffix(".lexicon.txt").read_text() == (BUNDLED_DIR / "an4.lexicon.txt").read_text()


def test_bundled_streaming_model_finalizes_any_chunking_of_real_speech_as_offline(an4_root):
    """Issue 3: with endpointing off, real AN4 utterances fed in random chunks (1 sample, 10 ms,
    37 ms, 1 s and random sizes mixed) finalize to exactly the words and times that decoding
    each whole file gives, greedily, with the LM, and with the LM and a second pass by the
    offline model."""
    from speechrnn.audio import load_audio

    if not (BUNDLED_DIR / "streaming.pt").is_file():
        pytest.skip("no bundled streaming model yet (recipes/an4/run.py --streaming --bundle)")
    model = load_model("streaming")
    rng = random.Random(0)
    utterances = rng.sample(an4_utterances(an4_root, "test"), 4)
    for search in (None, beam_search_for(model, "default"), beam_search_for(model, "default", rescore="offline")):
        for utterance in utterances:
            samples = load_audio(utterance.audio)
            expected = recognize(model, [torch.from_numpy(samples)], search=search)[0]
            assert expected.text, utterance.audio
            recognizer = StreamingRecognizer(model, endpoint=None, lm=search)
            position = 0
            for size in random_chunks(len(samples), rng):
                recognizer.accept_waveform(samples[position : position + size])
                position += size
            final = recognizer.finalize()
            assert (final.text, final.words) == (expected.text, expected.words), utterance.audio


def test_a_hot_word_spells_a_word_the_bundled_lexicon_lacks_live_and_offline(an4_root):
    """AN4 train never says "thirteen"; given as a hot word, or in a hot phrase, both paths
    spell it in the one test utterance that says it (the streaming model needs a boost, README:
    Hot words)."""
    wav = str(an4_root / "wav" / "an4test_clstk" / "fvap" / "an428-fvap-b.wav")
    model = load_model("streaming")
    assert "thirteen" not in beam_search_for(model).lexicon
    assert speechrnn.transcribe(wav, model) != "enter eight thirteen"
    assert speechrnn.transcribe(wav, model, hot_words=[("thirteen", 5.0)]) == "enter eight thirteen"
    samples = load_audio(wav)
    # As a phrase too: its later word, which the LM lacks, carries the boost in the lexicon trie
    # (without it "thirteen" was pruned within the word: "enter eight thirty").
    for hot_words in ([("thirteen", 5.0)], [("eight thirteen", 5.0)]):
        recognizer = StreamingRecognizer(model, endpoint=None, lm=beam_search_for(model, hot_words=hot_words))
        for start in range(0, len(samples), 1600):
            recognizer.accept_waveform(samples[start : start + 1600])
        assert recognizer.finalize().text == "enter eight thirteen", hot_words
    assert speechrnn.transcribe(wav, model, hot_words=[("eight thirteen", 5.0)]) == "enter eight thirteen"
