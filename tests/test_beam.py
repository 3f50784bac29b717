"""Beam search with a word LM: lexicon and lexicon-free, chunked = whole, n-best, tuning, CLI."""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil

import numpy as np
import pytest
import torch

from speechrnn.cli import main
from speechrnn.decoding import (
    HOT_WORD_BOOST,
    LEXICON_FREE_TOKENS,
    LEXICON_TOKENS,
    BeamSearch,
    BeamSearchConfig,
    BeamSearchDecoder,
    HotPhrases,
    LexiconReader,
    WordLMAdapter,
    beam_search_for,
    greedy_decode,
    hot_word_boosts,
    parse_hot_word,
    read_hot_words,
    tuning_path,
)
from speechrnn.lm import BOS, EOS, LMError, build_arpa, read_arpa, write_arpa, write_lexicon
from speechrnn.model import BUNDLED_DIR, load_model
from speechrnn.text import Tokenizer

TOK = Tokenizer()
SENTENCES = ["yes", "no", "yes please", "enter one two", "enter two one", "go", "erase one", "yes no"]


def log_probs_for(path: str, peak: float = 0.9, alternatives: dict[int, tuple[str, float]] | None = None) -> torch.Tensor:
    """(U, V) log-probabilities whose best path spells ``path`` ('_' blank); ``alternatives``
    gives frame -> (symbol, probability) for a runner-up at that frame."""
    probs = torch.full((len(path), len(TOK)), 0.01)
    for t, symbol in enumerate(path):
        probs[t, 0 if symbol == "_" else TOK.index[symbol]] = peak
    for t, (symbol, p) in (alternatives or {}).items():
        probs[t, 0 if symbol == "_" else TOK.index[symbol]] = p
    return (probs / probs.sum(-1, keepdim=True)).log()


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    arpa, lexicon = folder / "lm.arpa", folder / "lexicon.txt"
    write_arpa(arpa, build_arpa(SENTENCES, order=2))
    write_lexicon(lexicon, {w for s in SENTENCES for w in s.split()}, TOK)
    return arpa, lexicon


def decode(search: BeamSearch, log_probs: torch.Tensor, chunks: list[int] | None = None):
    decoder = search.decoder(frame_shift=0.03)
    start = 0
    for size in chunks or [log_probs.shape[0]]:
        decoder.step(log_probs[start : start + size])
        start += size
    decoder.step(log_probs[start:])
    decoder.finish()
    return decoder


def test_without_lm_matches_greedy_text_and_word_times():
    log_probs = log_probs_for("__gg_o__ _yyee_s__")
    greedy = greedy_decode(log_probs[None], torch.tensor([log_probs.shape[0]]), TOK, 0.03)[0]
    hyp = decode(BeamSearch(BeamSearchConfig(), TOK), log_probs).hypothesis()
    assert hyp.text == greedy.text == "go yes"
    assert [(w.word, w.start, w.end) for w in hyp.words] == [(w.word, w.start, w.end) for w in greedy.words]
    assert hyp.words[0].confidence == pytest.approx(greedy.words[0].confidence, abs=1e-4)


def test_lexicon_and_lm_correct_a_misspelling(lm_files):
    arpa, lexicon = lm_files
    # The acoustics slightly prefer "yez"; "yes" is the only lexicon word that fits.
    log_probs = log_probs_for("_yy_ee_z__", alternatives={7: ("s", 0.6)})
    assert greedy_decode(log_probs[None], torch.tensor([10]), TOK, 0.03)[0].text == "yez"
    hyp = decode(BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0), TOK), log_probs).hypothesis()
    assert hyp.text == "yes"
    assert hyp.words[0].word == "yes" and 0 < hyp.words[0].confidence < 0.9


def test_lm_prefers_the_likely_word_sequence(lm_files):
    arpa, _ = lm_files
    # "enter one" vs "enter won": acoustically even at the 'o'/'w' frame; only the LM knows "one".
    log_probs = log_probs_for("_ee_nn_t_ee_r__ _oo_n_e__", alternatives={17: ("w", 0.9)})
    config = BeamSearchConfig(lm=str(arpa), lm_weight=2.0)
    assert decode(BeamSearch(config, TOK), log_probs).hypothesis().text == "enter one"


def test_with_config_shares_the_loaded_lm_and_takes_the_other_settings(lm_files):
    arpa, lexicon = lm_files
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0), TOK)
    wide = search.with_config(dataclasses.replace(search.config, beam_size=64, word_score=2.0))
    assert wide.lm is search.lm and wide.trie is search.trie  # not reloaded
    assert (wide.options.beam_size, wide.options.word_score) == (64, 2.0)
    assert search.options.beam_size == 32  # the original is unchanged
    log_probs = log_probs_for("_yy_ee_z__", alternatives={7: ("s", 0.6)})
    assert decode(wide, log_probs).hypothesis().text == decode(search, log_probs).hypothesis().text == "yes"
    with pytest.raises(ValueError, match="keeps the LM, lexicon and hot words"):
        search.with_config(dataclasses.replace(search.config, lexicon=None))


def test_lexicon_free_search_still_spells_words_outside_the_lm(lm_files):
    arpa, _ = lm_files
    log_probs = log_probs_for("_zz_ee_bb_rr_aa__")
    hyp = decode(BeamSearch(BeamSearchConfig(lm=str(arpa), lm_weight=0.5), TOK), log_probs).hypothesis()
    assert hyp.text == "zebra"


def test_a_hot_word_joins_the_lexicon(lm_files):
    arpa, lexicon = lm_files
    log_probs = log_probs_for("_zz_ee_bb_rr_aa__")
    config = BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=0.5)
    assert decode(BeamSearch(config, TOK), log_probs).hypothesis().text != "zebra"  # not a lexicon word
    hot = BeamSearch(dataclasses.replace(config, hot_words=(("Zebra", 0.0),)), TOK)
    assert "zebra" in hot.lexicon and "zebra" not in BeamSearch(config, TOK).lexicon
    assert decode(hot, log_probs).hypothesis().text == "zebra"
    unweighted = BeamSearch(dataclasses.replace(config, lm_weight=0.0, hot_words=(("zebra", 0.0),)), TOK)  # the lexicon alone
    assert decode(unweighted, log_probs).hypothesis().text == "zebra"
    assert hot.decoder(0.03).lm is hot.lm  # no boost: the LM is called as without hot words
    avoided = BeamSearch(dataclasses.replace(config, hot_words=(("zebra", -1.0),)), TOK)
    assert "zebra" not in avoided.lexicon  # a word to avoid is not made spellable
    assert avoided.decoder(0.03).lm is avoided.lm  # nor boosted (as <unk>, every unknown word's index)


@pytest.mark.parametrize("lexicon", [True, False])
def test_a_boost_tips_a_close_choice_and_a_negative_one_avoids_a_word(lm_files, lexicon):
    arpa, lexicon_path = lm_files
    # "go" or "no": the acoustics prefer g a little; both are words of the LM and the lexicon.
    log_probs = log_probs_for("_gg_oo__", alternatives={1: ("n", 0.85), 2: ("n", 0.85)})
    config = BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon_path) if lexicon else None, lm_weight=0.5)

    def text(*hot_words):
        return decode(BeamSearch(dataclasses.replace(config, hot_words=hot_words), TOK), log_probs).hypothesis().text

    plain = text()
    other = {"go": "no", "no": "go"}[plain]
    assert text((other, 5.0)) == other
    assert text((plain, -5.0)) == other
    assert text((plain, 5.0), (other, 0.5)) == plain


@pytest.mark.parametrize("lexicon", [True, False])
def test_a_phrase_is_boosted_where_it_is_spelled_whole(lm_files, lexicon):
    arpa, lexicon_path = lm_files
    # "go yes go": each "go" could be "no" (the acoustics prefer g, against the LM's "yes no").
    path = "_gg_oo__ _yy_ee_ss__ _gg_oo__"
    alternatives = {t: ("n", 0.7) for t in (1, 2, 22, 23)}
    log_probs = log_probs_for(path, alternatives=alternatives)
    config = BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon_path) if lexicon else None, lm_weight=0.2)

    def text(*hot_words):
        return decode(BeamSearch(dataclasses.replace(config, hot_words=hot_words), TOK), log_probs, chunks=[5, 9]).hypothesis().text

    assert text() == "go yes go"
    assert text(("yes no", 3.0)) == "go yes no"  # only the "no" that ends the phrase
    assert text(("no", 3.0)) == "no yes no"
    assert text(("go yes no", 3.0)) == "go yes no"
    avoided = text(("no yes", 3.0), ("no yes go", -5.0))
    assert avoided == "no yes no" if lexicon else avoided.startswith("no yes ") and avoided != "no yes go"  # (or a non-word)


def test_lexicon_free_boosts_are_looked_ahead_and_settled_at_the_word_end(lm_files):
    arpa = read_arpa(lm_files[0])

    def spell(phrases, text, end=False):
        adapter = WordLMAdapter(arpa, TOK, HotPhrases(phrases))
        state, scores = adapter.start(False), []
        for token in TOK.encode(text) + [TOK.space]:
            state, score = adapter.score(state, token)
            scores.append(score)
        return scores + [adapter.finish(state)[1]] if end else scores

    words = {"yes": 2.0, "yet": -1.0}
    scores = spell(words, "yes")
    assert scores[:3] == [2.0, 0.0, 0.0]  # the prefix carries the best boost of the words it begins
    assert sum(scores) == pytest.approx(arpa.score((BOS,), "yes") + 2.0)
    assert sum(spell(words, "yet")) == pytest.approx(arpa.score((BOS,), "yet") - 1.0)
    assert sum(spell(words, "yeah")) == pytest.approx(arpa.score((BOS,), "yeah"))  # not hot: the look-ahead is taken back
    # A phrase: looked ahead over both words, given once it ends, taken back where it does not.
    phrases = {"yes": 2.0, "yes please": 3.0}
    lm_yes = arpa.score((BOS,), "yes")
    scores = spell(phrases, "yes please")
    assert scores[0] == 3.0 and sum(scores[:4]) == pytest.approx(lm_yes + 2.0 + 3.0)  # "yes " still looks ahead to the phrase
    assert sum(scores) == pytest.approx(lm_yes + arpa.score((BOS, "yes"), "please") + 2.0 + 3.0)
    assert sum(spell(phrases, "yes no")) == pytest.approx(lm_yes + arpa.score((BOS, "yes"), "no") + 2.0)
    assert sum(spell(phrases, "yes", end=True)) == pytest.approx(lm_yes + arpa.score((BOS, "yes"), EOS) + 2.0)
    assert sum(spell(phrases, "no please")) == pytest.approx(arpa.score((BOS,), "no") + arpa.score((BOS, "no"), "please"))


def test_hot_phrases_end_where_their_last_word_does_and_overlap():
    phrases = HotPhrases({"a b c": 4.0, "b c d": 2.0, "c": 1.0, "x y": -3.0})
    context, total = (), 0.0
    ended = []
    for word in "a b c d a b".split():
        context, boost = phrases.advance(context, word)
        ended.append(boost)
    assert ended == [0.0, 0.0, 5.0, 2.0, 0.0, 0.0]  # "a b c" and "c" end at c, "b c d" at d
    assert context == ("a", "b")
    assert phrases.look_ahead(("a", "b")) == 4.0 and phrases.look_ahead(("a", "b"), "d") == 0.0
    assert phrases.look_ahead((), "x") == 0.0  # a phrase to avoid is not looked ahead
    assert phrases.advance(("x",), "y") == ((), -3.0)
    # A lexicon trie's look-ahead: a phrase's first word carries it, a later word the LM lacks
    # its boost (its letters must outscore the words that end the phrase's look-ahead, on
    # <unk>'s unigram), one the LM has its own start's, an avoided one nothing.
    assert [phrases.trie_boost(word) for word in ("a", "c", "d", "x", "y")] == [4.0, 4.0, 2.0, 0.0, 0.0]
    assert [phrases.trie_boost(word, known=True) for word in ("a", "c", "d", "x", "y")] == [4.0, 1.0, 0.0, 0.0, 0.0]
    # Along any transcript the look-ahead given and taken back sums to the boosts of the phrases ended.
    context, total = (), 0.0
    for word in "a b c d x y b c".split():
        context, score = phrases.word_score(context, word, False)
        total += score
    assert total - phrases.look_ahead(context) == pytest.approx(5.0 + 2.0 - 3.0 + 1.0)


@pytest.mark.parametrize("hot_words", [(("one", 3.0), ("zebra", 1.0)), (("one", 3.0), ("enter one", 2.0), ("one two", -1.0))], ids=["words", "phrases"])
def test_a_reweighted_hot_word_search_equals_a_fresh_one(lm_files, hot_words):
    arpa, lexicon = lm_files
    torch.manual_seed(2)
    log_probs = torch.randn(90, len(TOK)).mul(3).log_softmax(-1)
    config = BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0, hot_words=hot_words)
    search = BeamSearch(config, TOK)
    # Single words' LM holds no state and serves every decoder; a phrase's context is per decoder.
    assert (search.decoder(0.03).lm is search.decoder(0.03).lm) == (len(hot_words) == 2)
    reweighted = search.reweighted(2.0, 0.5)
    fresh = BeamSearch(dataclasses.replace(config, lm_weight=2.0, word_score=0.5), TOK)
    expected = decode(fresh, log_probs).hypothesis()
    for hypothesis in (decode(reweighted, log_probs).hypothesis(), decode(reweighted, log_probs, chunks=[1, 7, 30, 13]).hypothesis()):
        assert hypothesis.text == expected.text and hypothesis.score == pytest.approx(expected.score)


def test_bad_hot_words_are_refused_by_name():
    assert parse_hot_word("Yes:2.5", HOT_WORD_BOOST) == ("Yes", 2.5)
    assert parse_hot_word("yes", 1.5) == ("yes", 1.5)
    for bad in ("yes:x", "yes:nan", "yes:inf", "yes:1e400"):
        with pytest.raises(ValueError, match=f"{bad!r}.*not a finite number"):
            parse_hot_word(bad, 0.0)
    assert parse_hot_word("New York:3", 0.0) == ("New York", 3.0)
    assert hot_word_boosts([("Café", 1), ("it's", -2), (" New  York ", 3)], TOK) == {"cafe": 1.0, "it's": -2.0, "new york": 3.0}
    for word in ("r2d2", "new y0rk", "", " ", "yes.", "'", "yes '", "five日"):
        with pytest.raises(ValueError, match=re.escape(repr(word))):
            hot_word_boosts([(word, 1.0)], TOK)
    with pytest.raises(ValueError, match="'YES' is given twice"):
        hot_word_boosts([("yes", 1.0), ("YES", 2.0)], TOK)
    with pytest.raises(ValueError, match="LM weight must be positive"):
        BeamSearchConfig(lm_weight=0.0, hot_words=(("yes", 1.0),))
    BeamSearchConfig(lm_weight=0.0, hot_words=(("yes", 0.0),))  # no boost: any weight (a lexicon alone)
    # A settings file's JSON lists become the config's pairs.
    assert BeamSearchConfig.from_dict({"hot_words": [["yes", 1]]}).hot_words == (("yes", 1.0),)


@pytest.mark.parametrize("lexicon", [True, False])
def test_chunked_decoding_equals_whole(lm_files, lexicon):
    arpa, lexicon_path = lm_files
    torch.manual_seed(0)
    log_probs = torch.randn(90, len(TOK)).mul(3).log_softmax(-1)
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon_path) if lexicon else None, lm_weight=1.0, nbest=3), TOK)
    whole = decode(search, log_probs).hypothesis()
    chunked = decode(search, log_probs, chunks=[1, 7, 0, 30, 13]).hypothesis()
    assert chunked.text == whole.text and chunked.score == pytest.approx(whole.score)
    assert chunked.words == whole.words


@pytest.mark.parametrize("lexicon", [True, False])
def test_long_utterance_search_is_pruned_with_the_same_result(lm_files, lexicon, monkeypatch):
    arpa, lexicon_path = lm_files
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon_path) if lexicon else None, lm_weight=1.0), TOK)
    log_probs = log_probs_for("_ee_nn_t_ee_r__ _oo_n_e__ _t_ww_oo___ _yy_ee_s__ " * 20)  # 980 frames
    unpruned = decode(search, log_probs).hypothesis()
    monkeypatch.setattr(BeamSearchDecoder, "prune_every", 100)
    monkeypatch.setattr(BeamSearchDecoder, "prune_lookback", 30)
    whole = decode(search, log_probs)
    decoder, held, start = search.decoder(frame_shift=0.03), [], 0
    for size in [7, 93, 1, 250, 33] * 4:
        decoder.step(log_probs[start : start + size])
        start += size
        held.append(decoder.frames_in_search)
    decoder.finish()
    assert whole.frames_in_search < log_probs.shape[0] and max(held) <= 100 + 30 + 100 + 250  # the search forgot
    assert decoder.hypothesis().text == whole.hypothesis().text == unpruned.text == " ".join(["enter one two yes"] * 20)
    assert decoder.hypothesis().words == whole.hypothesis().words == unpruned.words


def test_nbest_is_sorted_and_distinct(lm_files):
    arpa, lexicon = lm_files
    log_probs = log_probs_for("_yy_ee_s__ _nn_oo__", alternatives={2: ("g", 0.5), 13: ("g", 0.5)})
    decoder = decode(BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), nbest=4), TOK), log_probs)
    nbest = decoder.hypotheses()
    assert 2 <= len(nbest) <= 4
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    assert nbest[0].text == decoder.hypothesis().text
    assert list(decoder.hypothesis().alternatives) == nbest[1:]


def test_partial_hypothesis_grows_by_whole_words(lm_files):
    arpa, lexicon = lm_files
    log_probs = log_probs_for("_ee_nn_t_ee_r__ _oo_n_e__ _t_ww_oo___")
    decoder = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon)), TOK).decoder(0.03)
    partials = []
    for t in range(0, log_probs.shape[0], 3):
        decoder.step(log_probs[t : t + 3])
        partials.append(decoder.hypothesis().text)
    decoder.finish()
    final = decoder.hypothesis().text
    assert final == "enter one two"
    assert all(final.startswith(p) for p in partials) and "enter" in partials


def test_bad_lm_and_lexicon_files_are_named(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tyes\nnot a line\n\\end\\\n")
    with pytest.raises(LMError, match="bad.arpa"):
        BeamSearch(BeamSearchConfig(lm=str(bad)), TOK)
    empty = tmp_path / "empty.arpa"
    empty.write_text("")
    with pytest.raises(LMError, match="empty.arpa"):
        BeamSearch(BeamSearchConfig(lm=str(empty)), TOK)
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("café c a f é |\nyes y e s |\n")
    with pytest.warns(UserWarning, match=r"lexicon.txt:1"):
        search = BeamSearch(BeamSearchConfig(lexicon=str(lexicon)), TOK)
    assert decode(search, log_probs_for("_yy_ee_s__")).hypothesis().text == "yes"


def test_tuned_settings_are_found_beside_the_model(tmp_path, lm_files):
    from speechrnn.model import ModelConfig, SpeechModel, save_model, load_model

    arpa, lexicon = lm_files
    path = tmp_path / "tiny.pt"
    save_model(path, SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1)))
    model = load_model(path)
    assert beam_search_for(model) is None  # no settings: greedy
    tuning_path(path).write_text(json.dumps({"lm": str(arpa), "lexicon": str(lexicon), "lm_weight": 0.7, "word_score": 1.5}))
    search = beam_search_for(model)
    assert (search.config.lm_weight, search.config.word_score, search.config.lexicon) == (0.7, 1.5, str(lexicon))
    assert beam_search_for(model, "none") is None
    assert beam_search_for(model, lexicon="none").config.lexicon is None
    assert beam_search_for(model, lm_weight=2.0).config.lm_weight == 2.0
    # A settings file's hot words are used; those given instead replace them.
    tuning_path(path).write_text(json.dumps({"lm": str(arpa), "lexicon": str(lexicon), "lm_weight": 0.7, "hot_words": [["zebra", 2]]}))
    assert "zebra" in beam_search_for(model).lexicon
    assert beam_search_for(model, hot_words=[("zulu", 1.0)]).config.hot_words == (("zulu", 1.0),)
    with pytest.raises(ValueError, match="greedy decoding"):
        beam_search_for(model, "none", hot_words=[("zulu", 1.0)])


def test_tokens_tried_per_frame_follow_the_search_kind_unless_a_setting_names_them(tmp_path, lm_files):
    from speechrnn.model import ModelConfig, SpeechModel, save_model, load_model

    arpa, lexicon = lm_files
    assert BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon)), TOK).options.beam_size_token == LEXICON_TOKENS
    assert BeamSearch(BeamSearchConfig(lm=str(arpa)), TOK).options.beam_size_token == LEXICON_FREE_TOKENS
    assert BeamSearch(BeamSearchConfig(lm=str(arpa), beam_size_token=7), TOK).options.beam_size_token == 7
    path = tmp_path / "tiny.pt"
    save_model(path, SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=1)))
    tuning_path(path).write_text(json.dumps({"lm": str(arpa), "lexicon": str(lexicon), "beam_size_token": 6}))
    model = load_model(path)
    assert beam_search_for(model).options.beam_size_token == 6  # the settings' own
    assert beam_search_for(model, lexicon=str(lexicon)).options.beam_size_token == 6  # still a lexicon search
    # A search without the lexicon takes its own kind's number.
    assert beam_search_for(model, lexicon="none").options.beam_size_token == LEXICON_FREE_TOKENS
    assert beam_search_for(model, str(arpa)).options.beam_size_token == LEXICON_FREE_TOKENS
    assert beam_search_for(model, str(arpa), lexicon=str(lexicon)).options.beam_size_token == 6
    assert beam_search_for(model, lexicon="none", beam_size_token=5).options.beam_size_token == 5
    tuning_path(path).write_text(json.dumps({"lm": str(arpa), "beam_size_token": 3}))  # tuned without a lexicon
    assert beam_search_for(model).options.beam_size_token == 3
    assert beam_search_for(model, lexicon=str(lexicon)).options.beam_size_token == LEXICON_TOKENS
    with pytest.raises(ValueError, match="beam_size_token"):
        BeamSearchConfig(beam_size_token=0)


def test_cli_builds_an_lm_and_decodes_with_it(tmp_path, speech_dir, capsys):
    folder, phrases = speech_dir
    texts = tmp_path / "train.txt"
    texts.write_text("\n".join(phrases.values()) + "\n")
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(texts), "-o", str(arpa), "--order", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lexicon"].endswith("lm.lexicon.txt") and arpa.is_file()
    wav = str(folder / "yes.wav")
    assert main(["transcribe", wav, "--format", "jsonl", "--lm", str(arpa), "--lexicon", summary["lexicon"], "--nbest", "3"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "yes" and row["nbest"][0]["text"] == "yes"
    for hot_word in ("zebra:1", "zebra crossing:1"):
        assert main(["transcribe", wav, "--format", "jsonl", "--lm", str(arpa), "--lexicon", summary["lexicon"], "--hot-word", hot_word]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == "yes"
    assert main(["transcribe", wav, "--lm", str(arpa), "--hot-word", "zebra cr0ssing:1"]) == 2
    assert "'zebra cr0ssing'" in capsys.readouterr().err
    # A file of them: comments and blank lines skipped; a bad line named by file and number.
    listed = tmp_path / "hot.txt"
    listed.write_text("# places\nzebra crossing:1  # a phrase\n\nZulu\n")
    assert read_hot_words(listed, 0.5, TOK) == [("zebra crossing", 1.0), ("Zulu", 0.5)]
    assert main(["transcribe", wav, "--format", "jsonl", "--lm", str(arpa), "--hot-words", str(listed), "--hot-word", "yes:1"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "yes"
    listed.write_text("zebra\nzulu:x\n")
    assert main(["transcribe", wav, "--lm", str(arpa), "--hot-words", str(listed)]) == 2
    assert f"{listed}, line 2: hot word 'zulu:x'" in capsys.readouterr().err
    listed.write_bytes(b"caf\xe9\n")
    assert main(["transcribe", wav, "--lm", str(arpa), "--hot-words", str(listed)]) == 2
    assert f"{listed}: not UTF-8 text" in capsys.readouterr().err
    assert main(["transcribe", wav, "--lm", str(arpa), "--hot-words", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert main(["transcribe", wav, "--lm", "none", "--hot-word", "yes"]) == 2
    assert "greedy decoding (LM 'none') has no search" in capsys.readouterr().err
    assert main(["transcribe", wav, "--lm", str(tmp_path / "missing.arpa")]) == 2
    assert "missing.arpa" in capsys.readouterr().err


@pytest.mark.parametrize("lexicon", [True, False])
def test_streaming_final_with_lm_equals_offline_decoding(lm_files, lexicon):
    import numpy as np

    from speechrnn.model import ModelConfig, SpeechModel
    from speechrnn.streaming import StreamingRecognizer
    from speechrnn.transcribe import recognize

    arpa, lexicon_path = lm_files
    torch.manual_seed(1)
    model = SpeechModel(ModelConfig(bidirectional=False, n_hidden=32, n_proj=32, n_layers=2, lookahead=1)).eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # confident, varied outputs from an untrained model
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon_path) if lexicon else None, lm_weight=1.0, word_score=1.0), TOK)
    samples = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    offline = recognize(model, [torch.from_numpy(samples)], search=search)[0]
    assert offline.text  # the comparison below is not between two empty strings
    recognizer = StreamingRecognizer(model, endpoint=None, lm=search)
    rng = np.random.default_rng(1)
    start = 0
    while start < len(samples):
        size = int(rng.integers(1, 4000))
        recognizer.accept_waveform(samples[start : start + size])
        start += size
    final = recognizer.finalize()
    assert final.text == offline.text and final.words == offline.words


def test_cli_tunes_weights_on_a_dev_manifest(tmp_path, dev_manifest_and_lm, capsys):
    manifest, arpa = dev_manifest_and_lm
    capsys.readouterr()
    settings = tmp_path / "model.lm.json"
    args = ["lm", "tune", "--lm", str(arpa), "--lexicon", str(tmp_path / "lm.lexicon.txt"), "--manifest", str(manifest)]
    assert main(args + ["--lm-weights", "0.5,1", "--word-scores", "0,1", "-o", str(settings)]) == 0
    summary = json.loads(capsys.readouterr().out)
    written = json.loads(settings.read_text())
    assert (written["lm_weight"], written["word_score"]) == (summary["lm_weight"], summary["word_score"])
    assert written["lm_weight"] in (0.5, 1.0) and written["word_score"] in (0.0, 1.0)
    assert written["lm"] == "lm.arpa" and written["tuned"]["utterances"] == 4  # paths relative to the settings file
    assert written["tuned"]["dev_wer"] <= written["tuned"]["greedy_dev_wer"]
    # Several LMs: each is searched, and a tie goes to the one named first.
    twin = tmp_path / "twin.arpa"
    twin.write_bytes(arpa.read_bytes())
    args[args.index("--lm") + 1 : args.index("--lm") + 2] = [str(twin), str(arpa)]
    assert main(args + ["--lm-weights", "0.5,1", "--word-scores", "0,1", "-o", str(settings)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["lm"] == str(twin) and json.loads(settings.read_text())["lm"] == "twin.arpa"
    assert (both["lm_weight"], both["word_score"], both["dev_wer"]) == (summary["lm_weight"], summary["word_score"], summary["dev_wer"])
    # Several beam sizes: each is searched with each LM, and a tie goes to the smaller beam.
    assert main(args + ["--beam-size", "64", "4", "--lm-weights", "0.5,1", "--word-scores", "0,1", "-o", str(settings)]) == 0
    captured = capsys.readouterr()
    beams = json.loads(captured.out)
    assert json.loads(settings.read_text())["beam_size"] == beams["beam_size"]
    grid = [(float(wer), float(cer), int(beam)) for beam, wer, cer in re.findall(r"beam (\d+) lm_weight \S+ word_score \S+: WER (\S+)% CER (\S+)%", captured.err)]
    assert len(grid) == 2 * 2 * 2 * 2  # beams x LMs x weights x bonuses
    assert (beams["dev_wer"], beams["beam_size"]) == (min(grid)[0], min(grid)[2])
    # Without -o the settings go next to the model file, where transcribe and evaluate look.
    model_file = tmp_path / "mine" / "my_model.pt"
    model_file.parent.mkdir()
    shutil.copyfile(BUNDLED_DIR / "offline.pt", model_file)
    assert main(args + ["--model", str(model_file), "--lm-weights", "0.5", "--word-scores", "1"]) == 0
    beside = json.loads((tmp_path / "mine" / "my_model.lm.json").read_text())
    assert (beside["lm_weight"], beside["word_score"], beside["lm"]) == (0.5, 1.0, "../twin.arpa")  # the tie: the first LM named
    search = beam_search_for(load_model(model_file), "default")
    assert search is not None and (search.config.lm_weight, search.config.word_score) == (0.5, 1.0)
    # Tuned with hot words: LM weight 0 cannot carry a boost, so is not tried; the settings keep them.
    hot = args + ["--hot-word", "zebra crossing:2", "--hot-word", "zulu", "--lm-weights", "0,0.5", "--word-scores", "1", "-o", str(settings)]
    assert main(hot) == 0
    captured = capsys.readouterr()
    assert set(re.findall(r"lm_weight (\S+) word_score", captured.err)) == {"0.5"}
    assert json.loads(settings.read_text())["hot_words"] == [["zebra crossing", 2.0], ["zulu", 0.0]]
    assert main(hot[: hot.index("--lm-weights")] + ["--lm-weights", "0", "-o", str(settings)]) == 2
    assert "need a positive one" in capsys.readouterr().err
    # A bundled model's settings ship with it: tuning one needs -o, and a grid needs numbers.
    assert main(args + ["--lm-weights", "0.5", "--word-scores", "1"]) == 2
    assert "--model offline is a bundled model: give -o FILE" in capsys.readouterr().err
    assert main(args + ["--lm-weights", "", "-o", str(settings)]) == 2
    assert "not a comma-separated list of numbers: ''" in capsys.readouterr().err


def test_lexicon_search_keeps_a_last_word_that_ends_without_a_space(tmp_path):
    # The lexicon spells each word with its closing boundary, but the acoustic model ends an
    # utterance with silence, not a space: here "yes n" and then certain blanks. Reading the
    # 'n' frame as a space would close "yes" cheaply and drop the "n" (AN4 "a l a n" -> "a l a").
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(lexicon, {"yes", "n", "no"}, TOK)
    log_probs = log_probs_for("_yy_ee_s__ _n___")
    log_probs[-3:] = torch.full((len(TOK),), 1e-9).index_fill(0, torch.tensor([TOK.blank]), 1.0).log()
    decoder = decode(BeamSearch(BeamSearchConfig(lexicon=str(lexicon)), TOK), log_probs)
    hyp = decoder.hypothesis()
    assert hyp.text == "yes n"
    greedy = greedy_decode(log_probs[None], torch.tensor([log_probs.shape[0]]), TOK, 0.03)[0]
    assert hyp.words == greedy.words  # the closing boundary is no audio frame: times as greedy
    assert decoder.n_frames == log_probs.shape[0]


def test_lexicon_partial_shows_the_word_being_spoken_on_the_best_path_that_spells_it(lm_files):
    # The search's best partial ends at its last finished word ("yes"); the frames after it are
    # read on their best path, or where that leaves the lexicon, on the best path that spells
    # lexicon words.
    arpa, lexicon = lm_files
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0), TOK)
    spoken, garbled, cut = (search.decoder(frame_shift=0.03) for _ in range(3))
    spoken.step(log_probs_for("_yy_ee_s__ _nn_o"))
    garbled.step(log_probs_for("_yy_ee_s__ _nn_x", alternatives={15: ("o", 0.3)}))
    cut.step(log_probs_for("_yy_ee_s__ _nn_x", alternatives={15: ("_", 0.3)}))
    assert spoken.hypothesis().text == spoken.transcript()[0] == "yes no"
    assert garbled.hypothesis().text == "yes no"  # "nx" starts no lexicon word; "no" is next best
    assert cut.hypothesis().text == "yes n"  # a blank is next best: "n" so far
    unfinished, chunked = search.decoder(frame_shift=0.03), search.decoder(frame_shift=0.03)
    frames = log_probs_for("_yy_ee_s__ _nn_ _yy", alternatives={14: ("o", 0.3)})
    unfinished.step(frames)
    assert unfinished.hypothesis().text == "yes no y"  # "n" is no word; "no", then the start of "yes"
    for start in range(0, len(frames), 4):  # partials read on the way keep the reader's state
        chunked.step(frames[start : start + 4])
        chunked.transcript()
    assert chunked.transcript() == unfinished.transcript()
    spoken.step(log_probs_for("__")), spoken.finish()
    assert spoken.hypothesis().text == "yes no"


def test_lexicon_peek_continues_the_word_with_the_tentative_frames_without_changing_the_search(lm_files):
    arpa, lexicon = lm_files
    search = BeamSearch(BeamSearchConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0), TOK)
    frames = log_probs_for("_yy_ee_s__ _nn_oo__")
    peeked, plain = search.decoder(frame_shift=0.03), search.decoder(frame_shift=0.03)
    for decoder in (peeked, plain):
        decoder.step(frames[:13])  # "yes", then the first frame of "n"
    assert peeked.transcript()[0] == "yes n"
    assert peeked.peek(frames[13:17])[0] == "yes no"  # the next frames, read as the best path
    assert peeked.peek(log_probs_for("_x_", alternatives={1: ("_", 0.3)}))[0] == "yes n"  # "nx" starts no lexicon word
    between_words = search.decoder(frame_shift=0.03)
    between_words.step(frames[:12])  # "yes", then a blank
    assert between_words.peek(frames[12:17])[0] == "yes no"  # they may start a word too
    assert peeked.transcript() == plain.transcript()  # the search is as it was
    for decoder in (peeked, plain):
        decoder.step(frames[13:]), decoder.finish()
    assert peeked.hypothesis() == plain.hypothesis()
    assert peeked.hypothesis().text == "yes no"


def test_lexicon_reader_finds_the_best_spelling_path():
    """Against every path over a few tokens: the best one whose letters spell finished lexicon
    words, each closed by a space, then the start of one more (repeated letters need a blank)."""
    tokenizer = Tokenizer()
    words = ["ab", "b", "cab", "aa"]
    reader = LexiconReader(words, tokenizer)
    allowed = [tokenizer.blank, tokenizer.space] + [tokenizer.index[c] for c in "abc"]

    def spells(path):
        text, previous = "", None
        for token in path:
            if token != previous and token != tokenizer.blank:
                text += tokenizer.vocab[token]
            previous = token
        *finished, last = text.split(" ")
        return all(w in ("", *words) for w in finished) and any(w.startswith(last) for w in words)

    rng = np.random.default_rng(0)
    for _ in range(30):
        n_frames = int(rng.integers(1, 7))
        log_probs = np.full((n_frames, len(tokenizer)), -1e9)
        log_probs[:, allowed] = np.log(rng.dirichlet(np.full(len(allowed), 0.5), size=n_frames))
        best = max(sum(log_probs[t, token] for t, token in enumerate(path)) for path in itertools.product(allowed, repeat=n_frames) if spells(path))
        path = reader.best_path(log_probs)
        assert len(path) == n_frames and spells(path)
        assert sum(log_probs[t, token] for t, token in enumerate(path)) == pytest.approx(best, abs=1e-9)
        for other in rng.choice(allowed, size=(5, n_frames)).tolist():
            assert reader.spells(other) == spells(other)
        split = int(rng.integers(0, n_frames + 1))  # read in two pieces: the same
        assert reader.path(reader.advance(reader.advance(reader.start(), log_probs[:split]), log_probs[split:])) == path


def test_bundled_lm_settings_name_bundled_files():
    """Each bundled model's LM settings point at files that ship beside it."""
    settings_paths = sorted(BUNDLED_DIR.glob("*.lm.json"))
    assert {p.name for p in settings_paths} == {"offline.lm.json", "streaming.lm.json"}
    for settings_path in settings_paths:
        settings = json.loads(settings_path.read_text())
        for key in ("lm", "lexicon"):
            assert (BUNDLED_DIR / settings[key]).is_file(), f"{settings_path.name}: {settings[key]}"
