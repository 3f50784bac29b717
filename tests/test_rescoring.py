"""Second-pass rescoring: CTC likelihoods, re-ranking, streams = whole files, tuning, bad input."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch

from speechrnn.cli import main
from speechrnn.decoding import BeamSearch, BeamSearchConfig, Hypothesis, beam_search_for, tuning_path
from speechrnn.lm import build_arpa, write_arpa, write_lexicon
from speechrnn.model import BUNDLED_DIR, ModelConfig, SpeechModel, load_model, save_model
from speechrnn.rescoring import RescoreConfig, Rescorer, ctc_log_likelihood
from speechrnn.streaming import StreamingRecognizer
from speechrnn.text import Tokenizer
from speechrnn.transcribe import recognize

TOK = Tokenizer()
WORDS = ["yes", "no", "go", "enter", "one", "two", "erase"]


def test_ctc_log_likelihood_sums_over_all_alignments():
    rng = np.random.default_rng(0)
    log_probs = torch.from_numpy(rng.dirichlet(np.ones(len(TOK)), size=2)).float().log()
    a, b = TOK.index["a"], TOK.index["b"]
    p = log_probs.exp()
    # "a" in two frames: a_, _a, aa
    expected = p[0, a] * p[1, 0] + p[0, 0] * p[1, a] + p[0, a] * p[1, a]
    assert ctc_log_likelihood(log_probs, [a]) == pytest.approx(math.log(expected), abs=1e-5)
    assert ctc_log_likelihood(log_probs, [a, b]) == pytest.approx(math.log(p[0, a] * p[1, b]), abs=1e-5)
    assert ctc_log_likelihood(log_probs, []) == pytest.approx(math.log(p[0, 0] * p[1, 0]), abs=1e-5)
    assert ctc_log_likelihood(log_probs, [a, a]) == -math.inf  # a doubled letter needs a blank between: 3 frames


def tiny_model(bidirectional: bool, seed: int) -> SpeechModel:
    torch.manual_seed(seed)
    model = SpeechModel(ModelConfig(bidirectional=bidirectional, n_hidden=32, n_proj=32, n_layers=2, lookahead=0 if bidirectional else 1)).eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # confident, varied outputs from an untrained model
    return model


def partner_model(bidirectional: bool) -> SpeechModel:
    """A second pass for ``tiny_model(False, 1)``: bidirectional, or one that streams beside it
    (seeds whose vote changes some of its transcripts)."""
    return tiny_model(bidirectional, 2 if bidirectional else 5)


def hypothesis(text: str, score: float) -> Hypothesis:
    return Hypothesis(text, TOK.encode(text), [], score, [])


def test_the_partner_reranks_the_first_pass_nbest():
    first = hypothesis("yes", -1.0)._replace(alternatives=(hypothesis("no", -1.5),))
    # The partner's frames read "no" clearly.
    partner = torch.full((6, len(TOK)), -8.0)
    for t, symbol in enumerate("_n_oo_"):
        partner[t, 0 if symbol == "_" else TOK.index[symbol]] = 0.0
    partner = partner.log_softmax(-1)
    rescorer = Rescorer(RescoreConfig("unused", weight=0.0), partner=tiny_model(True, 0))
    assert rescorer.choose(first, partner).text == "yes"  # weight 0: the first pass's order
    chosen = rescorer.reweighted(1.0).choose(first, partner)
    assert chosen.text == "no" and [h.text for h in chosen.alternatives] == ["yes"]
    assert chosen.score == pytest.approx(-1.5 + ctc_log_likelihood(partner, TOK.encode("no")))
    assert chosen.alternatives[0].score == pytest.approx(-1.0 + ctc_log_likelihood(partner, TOK.encode("yes")))


def test_weight_zero_keeps_the_first_pass_even_where_the_partner_cannot_hold_a_transcript():
    """A transcript the partner's frames are too few to hold has log-likelihood -inf; at weight
    0 the partner has no vote (its scores are the search's, never NaN), at any other it ranks last."""
    a = TOK.index["a"]
    first = Hypothesis("aa", [a, a], [], -1.0, [])._replace(alternatives=(Hypothesis("a", [a], [], -1.5, []),))
    partner = torch.zeros(2, len(TOK)).log_softmax(-1)  # two frames: "aa" needs three
    rescorer = Rescorer(RescoreConfig("unused", weight=0.0), partner=tiny_model(True, 0))
    kept = rescorer.choose(first, partner)
    assert (kept.text, kept.score, kept.alternatives[0].score) == ("aa", -1.0, -1.5)
    assert rescorer.reweighted(0.5).choose(first, partner).text == "a"


@pytest.fixture(scope="module")
def lexicon_search(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    arpa, lexicon = folder / "lm.arpa", folder / "lexicon.txt"
    write_arpa(arpa, build_arpa([" ".join(WORDS[i : i + 3]) for i in range(len(WORDS))], order=2))
    write_lexicon(lexicon, set(WORDS), TOK)
    return BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=0.5, word_score=1.0), TOK)


def stream(recognizer: StreamingRecognizer, samples: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(samples):
        size = int(rng.integers(1, 4000))
        recognizer.accept_waveform(samples[start : start + size])
        start += size
    return recognizer.finalize()


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional-partner", "streaming-partner"])
def test_a_stream_is_rescored_over_its_whole_audio_as_a_file_is(lexicon_search, bidirectional, monkeypatch):
    """With endpointing off, a stream's final is its n best re-ranked by the partner over the
    whole audio: what whole-file decoding gives, for any chunking. A unidirectional partner
    streams beside the first pass instead of reading the kept audio at the end."""
    model, partner = tiny_model(False, 1), partner_model(bidirectional)
    samples = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    # A large weight, so that the partner's vote decides among the first pass's hypotheses.
    search = lexicon_search.with_rescorer(Rescorer(RescoreConfig("tiny", weight=100.0), TOK, partner=partner))
    plain = recognize(model, [torch.from_numpy(samples)], search=lexicon_search.with_config(dataclasses.replace(lexicon_search.config, nbest=16)))[0]
    partner_log_probs = Rescorer(search.rescorer.config, partner=partner).partner_log_probs([torch.from_numpy(samples)])[0]
    expected = max([plain, *plain.alternatives], key=lambda h: h.score + 100.0 * ctc_log_likelihood(partner_log_probs, h.tokens))
    assert expected.text != plain.text  # (these models' seeds): the second pass changes the transcript
    whole = recognize(model, [torch.from_numpy(samples)], search=search)[0]
    assert whole.text == expected.text and not whole.alternatives  # nbest 1 asked for: the rest dropped
    if not bidirectional:
        monkeypatch.setattr(search.rescorer, "partner_log_probs", lambda waves: pytest.fail("a streaming partner re-read the audio"))
    for seed in (1, 2):
        recognizer = StreamingRecognizer(model, endpoint=None, lm=search)
        final = stream(recognizer, samples, seed)
        assert (final.text, final.words) == (whole.text, whole.words)
        assert (recognizer._partner_state is None) == bidirectional


def test_a_file_s_n_best_is_the_whole_n_best_re_ranked_and_cut(lexicon_search):
    """Whole-file decoding spells out only the hypotheses it keeps; they are what re-ranking
    every one of the search's n best (Rescorer.choose) and cutting the list keeps: texts,
    words, times, confidences and combined scores."""
    model, partner = tiny_model(False, 1), partner_model(True)
    samples = torch.from_numpy(np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1)
    rescorer = Rescorer(RescoreConfig("tiny", weight=100.0), TOK, partner=partner)
    # Without the lexicon and with a wide beam, this confident model's search keeps 16 hypotheses.
    config = dataclasses.replace(lexicon_search.config, lexicon=None, beam_threshold=1000.0, nbest=16)
    plain = recognize(model, [samples], search=BeamSearch(config, TOK))[0]
    expected = rescorer.choose(plain, rescorer.partner_log_probs([samples])[0])
    assert len(plain.alternatives) == 15 and expected.text != plain.text  # (these models' seeds)
    kept = recognize(model, [samples], search=BeamSearch(dataclasses.replace(config, nbest=4), TOK).with_rescorer(rescorer))[0]
    assert kept == expected._replace(alternatives=expected.alternatives[:3])


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional-partner", "streaming-partner"])
def test_an_utterance_longer_than_the_limit_keeps_the_first_pass_best(lexicon_search, bidirectional):
    model, partner = tiny_model(False, 1), partner_model(bidirectional)
    samples = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    first_pass = recognize(model, [torch.from_numpy(samples)], search=lexicon_search)[0]
    within_limit = Rescorer(RescoreConfig("tiny", weight=100.0, max_seconds=1.5), TOK, partner=partner)
    assert recognize(model, [torch.from_numpy(samples)], search=lexicon_search.with_rescorer(within_limit))[0].text != first_pass.text
    short_limit = Rescorer(RescoreConfig("tiny", weight=100.0, max_seconds=1.0), TOK, partner=partner)
    search = lexicon_search.with_rescorer(short_limit)
    assert recognize(model, [torch.from_numpy(samples)], search=search)[0].text == first_pass.text
    recognizer = StreamingRecognizer(model, endpoint=None, lm=search)
    recognizer.accept_waveform(samples[:20000])
    assert recognizer._too_long and sum(len(a) for a in recognizer._audio) <= 16000  # over the limit: at most the last second kept
    assert not recognizer._partner_frames  # (and a streaming partner's frames dropped)
    recognizer.accept_waveform(samples[20000:])
    assert recognizer.finalize().text == first_pass.text


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional-partner", "streaming-partner"])
def test_after_an_utterance_too_long_to_rescore_the_next_one_is_rescored_again(lexicon_search, bidirectional):
    """Endpointing with a short rescoring limit: the first utterance outgrows it, the second,
    which starts inside the second the recognizer kept, is rescored over its own audio as a
    stream started there is (a streaming partner restarts there as the first pass does)."""
    from speechrnn.streaming import EndpointConfig

    model, partner = tiny_model(False, 1), partner_model(bidirectional)
    samples = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    search = lexicon_search.with_rescorer(Rescorer(RescoreConfig("tiny", weight=100.0, max_seconds=1.0), TOK, partner=partner))
    recognizer = StreamingRecognizer(model, endpoint=EndpointConfig(max_utterance=1.2), lm=search)
    finals = [e for e in recognizer.accept_waveform(samples) if e.type == "final"]
    assert len(finals) == 1 and recognizer._too_long is False
    second_start = round(finals[0].end * 16000)
    recognizer.accept_waveform(samples[:4000])  # a second utterance of 0.7 s in all: under the limit
    second = np.concatenate([samples[second_start:], samples[:4000]])
    fresh, first_pass = StreamingRecognizer(model, endpoint=None, lm=search), StreamingRecognizer(model, endpoint=None, lm=lexicon_search)
    fresh.accept_waveform(second)
    first_pass.accept_waveform(second)
    expected = fresh.finalize().text
    assert recognizer.finalize().text == expected != first_pass.finalize().text  # (these seeds: the second pass changes it)


def test_a_streaming_partner_with_the_first_pass_frontend_takes_its_frames_from_it(lexicon_search):
    """A unidirectional partner whose frontend settings and filters are the first pass's takes
    the log-mel frames from the first pass (normalised by its own statistics) instead of
    computing them again: the same frames and states, chunk by chunk and across an utterance
    restart, as when it computes them itself, and the first utterance's frames are its
    whole-audio ones. One with other settings computes its own."""
    from speechrnn.features import FrontendConfig
    from speechrnn.streaming import EndpointConfig, shares_frontend
    from speechrnn.transcribe import emissions

    def unidirectional(seed: int, frontend: FrontendConfig) -> SpeechModel:
        torch.manual_seed(seed)
        model = SpeechModel(ModelConfig(frontend=frontend, bidirectional=False, n_hidden=32, n_proj=32, n_layers=2, lookahead=1)).eval()
        with torch.no_grad():
            model.head.weight.mul_(30)
        return model

    tracking = FrontendConfig(level_decay_db=10.0)  # (the bundled streaming model's level tracking)
    model, partner, other_stats = unidirectional(1, tracking), unidirectional(5, tracking), unidirectional(5, tracking)
    with torch.no_grad():
        other_stats.frontend.cmvn_mean.add_(0.5)
        other_stats.frontend.cmvn_std.mul_(2.0)
    other_frontend = unidirectional(5, dataclasses.replace(tracking, f_max=7000.0))
    assert shares_frontend(model, partner) and shares_frontend(model, other_stats)
    assert not shares_frontend(model, other_frontend)
    samples = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1
    samples[:8000] *= 0.01  # (a quiet start: the level tracking's reference moves)

    def stream(partner: SpeechModel, shared: bool):
        search = lexicon_search.with_rescorer(Rescorer(RescoreConfig("tiny", weight=100.0), TOK, partner=partner))
        recognizer = StreamingRecognizer(model, endpoint=EndpointConfig(max_utterance=1.2), lm=search)
        assert recognizer._partner_shares_frontend == shares_frontend(model, partner)
        recognizer._partner_shares_frontend = shared
        readings, finals, held = [], [], 0
        for start in range(0, len(samples), 1440):
            events = recognizer.accept_waveform(samples[start : start + 1440])
            finals += [e for e in events if e.type == "final"]
            held += any(e.type == "final" for e in events) and recognizer._partner_state.frames.shape[1] > 0
            if not finals:  # the first utterance: the partner's frames so far
                readings.append((start + 1440, torch.cat(recognizer._partner_frames)))
            readings.append((recognizer._partner_state.hidden.clone(), [f.clone() for f in recognizer._partner_frames]))
        assert held  # (this chunking): an utterance restarts with a frame held for stacking, normalised again
        return readings, [e.text for e in finals + [recognizer.finalize()]]

    for partner in (partner, other_stats, other_frontend):
        computed, computed_finals = stream(partner, False)
        assert len(computed_finals) >= 2  # (max_utterance): the stream restarts
        for samples_read, frames in (r for r in computed if isinstance(r[0], int)):  # (the first utterance)
            whole = next(emissions(partner, [torch.from_numpy(samples[:samples_read])]))[1]
            torch.testing.assert_close(frames, whole[: len(frames)], atol=1e-4, rtol=1e-4)
        if partner is other_frontend:
            continue  # (shares_frontend said no: it always computes its own)
        shared, finals = stream(partner, True)
        assert finals == computed_finals
        for a, b in zip(shared, computed, strict=True):
            if isinstance(a[0], int):  # (samples read, frames of the first utterance)
                assert a[0] == b[0] and torch.equal(a[1], b[1])
            else:  # (hidden state, frames kept)
                assert torch.equal(a[0], b[0]) and len(a[1]) == len(b[1])
                assert all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def test_rescoring_settings_are_read_overridden_and_turned_off(tmp_path, lexicon_search):
    path = tmp_path / "mine.pt"
    save_model(path, tiny_model(False, 1))
    partner_path = tmp_path / "partner.pt"
    save_model(partner_path, tiny_model(True, 2))
    config = lexicon_search.config.to_dict()
    tuning_path(path).write_text(json.dumps({**config, "rescore": {"model": "partner.pt", "weight": 0.75, "nbest": 8}}))
    model = load_model(path)
    search = beam_search_for(model)
    assert search.rescorer.config == RescoreConfig(str(partner_path), weight=0.75, nbest=8)
    assert search.decoder(0.02).nbest == 8
    assert beam_search_for(model, rescore="none").rescorer is None
    assert beam_search_for(model, rescore_weight=2.0).rescorer.config.weight == 2.0
    assert beam_search_for(model, config["lm"]).rescorer is None  # tuned for the tuned LM only
    assert beam_search_for(model, config["lm"], rescore=str(partner_path)).rescorer.config.weight == 0.25  # the default weight


def test_bad_rescoring_settings_name_the_file(tmp_path, lexicon_search):
    path = tmp_path / "mine.pt"
    save_model(path, tiny_model(False, 1))
    model = load_model(path)
    other = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1, vocab=TOK.vocab[:-1]))
    save_model(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match="other.pt: the rescoring model's vocabulary differs"):
        beam_search_for(model, lexicon_search.config.lm, rescore=str(tmp_path / "other.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        beam_search_for(model, lexicon_search.config.lm, rescore=str(tmp_path / "missing.pt"))
    tuning_path(path).write_text(json.dumps({**lexicon_search.config.to_dict(), "rescore": "partner.pt"}))
    with pytest.raises(ValueError, match="mine.lm.json: not a readable decoding settings file"):
        beam_search_for(model)


def test_cli_tunes_a_second_pass_and_decoding_uses_it(tmp_path, speech_dir, dev_manifest_and_lm, capsys):
    folder, _ = speech_dir
    manifest, arpa = dev_manifest_and_lm
    model_file = tmp_path / "my_model.pt"
    model_file.write_bytes((BUNDLED_DIR / "streaming.pt").read_bytes())
    partner_file = tmp_path / "partner.pt"
    partner_file.write_bytes((BUNDLED_DIR / "offline.pt").read_bytes())
    capsys.readouterr()
    args = ["lm", "tune", "--model", str(model_file), "--lm", str(arpa), "--lexicon", str(tmp_path / "lm.lexicon.txt"), "--manifest", str(manifest)]
    # A tie goes to the smaller weight: a second pass is written only when it reads dev better.
    assert main(args + ["--lm-weights", "1", "--word-scores", "1", "--rescore-model", str(partner_file), "--rescore-weights", "0,0.5"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "rescoring by partner.pt at weight 0.5" in captured.err
    written = json.loads(tuning_path(model_file).read_text())
    assert written["tuned"]["first_pass_dev_wer"] == summary["first_pass_dev_wer"] >= summary["dev_wer"]
    # A forced second pass: transcribe and evaluate take it from the settings file.
    assert main(args + ["--lm-weights", "1", "--word-scores", "1", "--rescore-model", str(partner_file), "--rescore-weights", "0.5"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model_file), "--manifest", str(manifest)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    decoding = evaluated["decoding"]
    assert decoding["rescore"]["model"] == str(partner_file) and decoding["rescore"]["weight"] == 0.5
    # The first tuning's choice, checked against the WER that the forced second pass reads on the
    # same dev set: kept only where it read better than the first pass alone.
    if evaluated["wer"] < summary["first_pass_dev_wer"]:
        assert written["rescore"]["model"] == "partner.pt" and written["rescore"]["weight"] == 0.5
        assert summary["dev_wer"] == evaluated["wer"]
    else:
        assert "rescore" not in written and summary["rescore"] is None and summary["dev_wer"] == summary["first_pass_dev_wer"]
    assert main(["evaluate", "--model", str(model_file), "--manifest", str(manifest), "--rescore", "none"]) == 0
    assert "rescore" not in json.loads(capsys.readouterr().out)["decoding"]
    assert main(["evaluate", "--model", str(model_file), "--manifest", str(manifest), "--lm", "none", "--rescore", str(partner_file)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["decoding"] == "greedy" and "greedy decoding (--lm none) has none" in captured.err
    wav = str(folder / "yes.wav")
    assert main(["transcribe", "--model", str(model_file), "--format", "jsonl", "--nbest", "3", wav]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == row["nbest"][0]["text"] and len(row["nbest"]) <= 3
    import speechrnn

    assert speechrnn.transcribe(wav, str(model_file)) == row["text"]  # the Python API takes the same settings
    assert speechrnn.transcribe(wav, str(model_file), rescore="none") == recognize(
        load_model(model_file), [torch.from_numpy(speechrnn.load_audio(wav))], search=beam_search_for(load_model(model_file), rescore="none")
    )[0].text


def test_bundled_models_ship_without_a_second_pass_and_take_each_other_when_asked():
    """Neither bundled model re-ranks by default: the streaming model keeps the first pass
    alone (a two-pass final revises its partials more often; see the README), and the offline
    model keeps `transcribe` fast (328.0x with the second pass against 475.4x, session 56). Each
    takes the other by its bundled name when asked, at the weight AN4 dev chose for the pair
    when the later of the two was bundled (session 56: the offline model's `--bundle`
    re-chose both pairs), recorded in its settings beside the figures measured with it
    (recomputed below). `streaming-partner`, a second pass that streams beside the streaming
    model, was recorded in sessions 41-45 and 50; session 51's bundle dropped it (dev read every
    weight above 0 worse), so it takes the default weight."""
    expected = {"offline": {"streaming": 0.5}, "streaming": {"offline": 1.5, "streaming-partner": None}}
    for name, partners in expected.items():
        model = load_model(name)
        settings = json.loads((BUNDLED_DIR / f"{name}.lm.json").read_text())
        assert "rescore" not in settings and beam_search_for(model).rescorer is None
        recorded = {other: record["weight"] for other, record in settings.get("partners", {}).items()}
        assert recorded == {partner: weight for partner, weight in partners.items() if weight is not None}
        for partner, weight in partners.items():
            search = beam_search_for(model, rescore=partner)
            assert search.rescorer.partner.source == str(BUNDLED_DIR / f"{partner}.pt")
            assert search.rescorer.config.weight == (weight if weight is not None else RescoreConfig("x").weight)
            assert beam_search_for(model, rescore=partner, rescore_weight=2.5).rescorer.config.weight == 2.5  # a weight neither recorded nor the default
    # A partner the settings do not name takes the default weight.
    assert beam_search_for(load_model("offline"), rescore="streaming-partner").rescorer.config.weight == RescoreConfig("x").weight


def test_a_named_partner_takes_the_weight_its_settings_record_else_the_second_passs(tmp_path):
    """Which weight `--rescore PARTNER` gets: the one the settings' ``partners`` record
    for that partner (named as a bundled model or by its file, beside the settings or not),
    else the tuned second pass's, else (no settings) the default; `--rescore-weight` beats all.
    (Weights apart from the bundled records and the default here, partners named both ways.)"""
    model_file = tmp_path / "m.pt"
    shutil.copy(BUNDLED_DIR / "streaming.pt", model_file)
    shutil.copy(BUNDLED_DIR / "streaming-partner.pt", tmp_path / "beside.pt")
    settings = {k: v for k, v in json.loads((BUNDLED_DIR / "streaming.lm.json").read_text()).items() if k != "partners"}
    settings.update(lm=str(BUNDLED_DIR / settings["lm"]), lexicon=str(BUNDLED_DIR / settings["lexicon"]))
    settings["rescore"] = {"model": str(BUNDLED_DIR / "streaming-partner.pt"), "weight": 0.5}
    settings["partners"] = {"offline": {"weight": 1.5}, "beside.pt": {"weight": 2.5, "an4_test": {"wer": 1.0}}}
    (tmp_path / "m.lm.json").write_text(json.dumps(settings))
    model = load_model(model_file)
    weight = lambda partner, **kw: beam_search_for(model, rescore=partner, **kw).rescorer.config.weight
    assert beam_search_for(model).rescorer.config.weight == 0.5
    assert weight("offline") == weight(str(BUNDLED_DIR / "offline.pt")) == 1.5
    assert weight(str(tmp_path / "beside.pt")) == 2.5
    assert weight("streaming") == weight("streaming-partner") == 0.5  # not recorded: the second pass's weight
    assert weight("offline", rescore_weight=2.0) == 2.0
    for malformed in ({"offline": {"weight": "high"}}, {"offline": 1.5}, ["offline"]):
        settings["partners"] = malformed
        (tmp_path / "m.lm.json").write_text(json.dumps(settings))
        with pytest.raises(ValueError, match="m.lm.json: partners"):
            beam_search_for(model, rescore="offline")
    (tmp_path / "m.lm.json").unlink()
    assert beam_search_for(model, lm=settings["lm"], rescore="offline").rescorer.config.weight == RescoreConfig("x").weight


def test_the_bundled_streaming_partner_streams_beside_the_streaming_model():
    """`--rescore streaming-partner` (session 34's model: the bundled streaming model's first
    training cycle, which AN4 dev no longer chooses as its second pass) streams beside the
    bundled streaming model (no second reading of the audio). Since session 49 the streaming
    model's floor before the log is 1e-10 and the partner's 1e-6, so the partner computes its own
    log-mel frames (the sharing itself: the toy pairs above)."""
    import dataclasses

    from speechrnn.streaming import shares_frontend, streams_beside

    streaming, partner = load_model("streaming"), load_model("streaming-partner")
    assert streams_beside(streaming, partner) and not shares_frontend(streaming, partner)
    assert (streaming.config.frontend.log_offset, partner.config.frontend.log_offset) == (1e-10, 1e-6)
    assert dataclasses.replace(partner.config.frontend, log_offset=1e-10) == streaming.config.frontend  # the only difference
    recognizer = StreamingRecognizer(streaming, lm=beam_search_for(streaming, rescore="streaming-partner"))
    assert recognizer._partner_state is not None and not recognizer._partner_shares_frontend


# Every opt-in pair a bundled model's settings record (its "partners"), as (model, partner).
RECORDED_PAIRS = [(name, partner) for name in ("offline", "streaming") for partner in json.loads((BUNDLED_DIR / f"{name}.lm.json").read_text()).get("partners", {})]


@pytest.mark.parametrize("name, partner", RECORDED_PAIRS)
def test_bundled_models_recorded_pairs_reproduce_their_published_wer(an4_root, name, partner):
    """The figures of the opt-in second passes a bundled model's settings record (README,
    Measured figures) are recomputed here: the model re-ranked by the partner at the weight AN4
    dev chose for the pair, which `--rescore PARTNER` takes."""
    from speechrnn.data import an4_dev_split, an4_utterances
    from speechrnn.evaluate import evaluate

    measured = json.loads((BUNDLED_DIR / f"{name}.lm.json").read_text())["partners"][partner]
    model = load_model(name)
    search = beam_search_for(model, rescore=partner)
    assert search.rescorer.config.weight == measured["weight"]
    for split, utterances in (("an4_test", an4_utterances(an4_root, "test")), ("an4_dev", an4_dev_split(an4_root))):
        result = evaluate(model, utterances, search=search)
        assert (result.wer, result.cer) == (pytest.approx(measured[split]["wer"], abs=0.01), pytest.approx(measured[split]["cer"], abs=0.01)), split


def test_the_bundled_pairs_are_recorded():
    assert RECORDED_PAIRS == [("offline", "streaming"), ("streaming", "offline")]  # so the test above has something to check


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional-partner", "streaming-partner"])
def test_rescored_partials_follow_the_partners_ranking_and_finals_stay(lexicon_search, bidirectional):
    """With ``rescore_partials`` each partial is the search's current n best re-ranked by the
    partner over the audio so far (the plain partial where the search's best wins; a
    streaming partner's frames computed chunk by chunk, the same); the final is the same as
    without it."""
    model, partner = tiny_model(False, 1), partner_model(bidirectional)
    samples = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    search = lexicon_search.with_rescorer(Rescorer(RescoreConfig("tiny", weight=100.0), TOK, partner=partner))
    plain = StreamingRecognizer(model, endpoint=None, lm=search)
    rescored = StreamingRecognizer(model, endpoint=None, lm=search, rescore_partials=True, rescore_growth=0.0)
    changed = 0
    for start in range(0, len(samples), 1600):
        chunk = samples[start : start + 1600]
        shown = plain.accept_waveform(chunk)[-1]
        partial = rescored.accept_waveform(chunk)[-1]
        candidates = rescored.decoder.current_hypotheses()
        audio = torch.from_numpy(samples[: start + len(chunk)])
        partner_log_probs = search.rescorer.partner_log_probs([audio])[0]
        best = max(candidates, key=lambda h: h.score + 100.0 * ctc_log_likelihood(partner_log_probs, h.tokens))
        expected = shown.text if best.tokens == candidates[0].tokens else best.text
        assert partial.text == expected
        changed += partial.text != shown.text
    assert changed  # (these models' seeds): the partner re-ranks some partials
    assert rescored.finalize().text == plain.finalize().text


def test_rescored_partials_are_reranked_as_the_utterance_grows_and_keep_their_choice_between(lexicon_search, monkeypatch):
    """With ``rescore_growth`` g the partner reads the utterance only once it has grown by g
    since its last reading; a partial in between is the best of the search's n best that
    extends the last re-ranked choice (the plain partial where that is the search's best, or
    none extends it, or the choice was the search's best)."""
    model, partner = tiny_model(False, 1), tiny_model(True, 2)
    samples = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1
    search = lexicon_search.with_rescorer(Rescorer(RescoreConfig("tiny", weight=100.0), TOK, partner=partner))
    plain = StreamingRecognizer(model, endpoint=None, lm=search)
    rescored = StreamingRecognizer(model, endpoint=None, lm=search, rescore_partials=True, rescore_growth=0.5)
    read = []  # the audio lengths the partner read
    partner_log_probs = search.rescorer.partner_log_probs
    monkeypatch.setattr(search.rescorer, "partner_log_probs", lambda waves: read.append(len(waves[0])) or partner_log_probs(waves))
    choice, last, kept_choices = None, 0, 0
    for start in range(0, len(samples), 1600):
        chunk = samples[start : start + 1600]
        length = start + len(chunk)
        shown = plain.accept_waveform(chunk)[-1]
        reads = len(read)
        partial = rescored.accept_waveform(chunk)[-1]
        candidates = rescored.decoder.current_hypotheses()
        assert len(candidates) >= 2  # (these models and this search): every partial has runners-up
        if length >= 1.5 * last:
            assert read[reads:] == [length]
            audio = torch.from_numpy(samples[:length])
            scores = search.rescorer.partner_log_probs([audio])[0]
            read.pop()
            best = max(candidates, key=lambda h: h.score + 100.0 * ctc_log_likelihood(scores, h.tokens))
            choice, last = (None if best is candidates[0] else best.tokens), length
            expected = shown.text if choice is None else best.text
        else:
            assert read[reads:] == []
            kept = next((h for h in candidates if choice is not None and h.tokens[: len(choice)] == choice), None)
            if kept is None or kept is candidates[0]:
                choice, expected = None, shown.text
            else:
                expected, kept_choices = kept.text, kept_choices + 1
        assert partial.text == expected
    assert len(read) < len(samples) // 1600 / 2  # the partner read fewer than half the partials
    assert kept_choices  # (these models' seeds): some partials between readings keep a re-ranked choice
    assert rescored.finalize().text == plain.finalize().text


def test_current_candidates_are_the_current_hypotheses_tokens_and_scores(lexicon_search, monkeypatch):
    """What a re-ranking reads (token lists and scores only) is what the whole n best hold, at
    every chunk, before and after the search commits a pruned prefix (pruned here every 2 s,
    so that a short stream crosses several boundaries), and once the search has finished."""
    from speechrnn.decoding import BeamSearchDecoder

    monkeypatch.setattr(BeamSearchDecoder, "prune_every", 100)
    monkeypatch.setattr(BeamSearchDecoder, "prune_lookback", 30)
    monkeypatch.setattr(BeamSearchDecoder, "_LOOKBACK_SLACK", 10)
    model = tiny_model(False, 1)
    samples = np.random.default_rng(3).standard_normal(16000 * 8).astype(np.float32) * 0.1
    recognizer = StreamingRecognizer(model, endpoint=None, lm=lexicon_search.with_config(dataclasses.replace(lexicon_search.config, nbest=16)))
    compared = 0
    for start in range(0, len(samples), 4000):
        recognizer.accept_waveform(samples[start : start + 4000])
        decoder = recognizer.decoder
        candidates, hypotheses = decoder.current_candidates(), decoder.current_hypotheses()
        assert [(c.tokens, c.score) for c in candidates] == [(h.tokens, h.score) for h in hypotheses]
        assert [decoder.candidate_hypothesis(c) for c in candidates] == hypotheses
        compared += len(candidates) > 1
    assert decoder._committed.n_frames > 0  # the search pruned and committed a prefix
    assert compared  # (this search): some chunks have runners-up to compare
    recognizer.finalize()
    candidates, hypotheses = decoder.current_candidates(), decoder.hypotheses()
    assert len(candidates) > 1
    assert [(c.tokens, c.score) for c in candidates] == [(h.tokens, h.score) for h in hypotheses]
    assert [decoder.candidate_hypothesis(c) for c in candidates] == hypotheses
