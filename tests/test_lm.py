from __future__ import annotations

import json
import math
import os
import stat
import threading

import pytest
import torch

from speechrnn.lm import (
    EOS,
    UNK,
    LMError,
    build_arpa,
    build_lexicon,
    build_lm_files,
    modified_kn_discounts,
    read_arpa,
    read_lexicon,
    write_arpa,
    write_lexicon,
)

# AN4-like commands: repeats give count-of-counts n1..n4 > 0 at the higher orders, so both the
# discount formulas and their fallback are exercised.
CORPUS = [
    "go forward ten",
    "go back two",
    "go back ten",
    "go forward ten",
    "erase c q seven",
    "enter five two",
    "enter five two",
    "enter six",
    "rubout g m e f three",
    "yes",
    "no",
    "yes",
    "go forward ten meters",
    "stop",
    "don't stop",
    "go go go",
]
DECODER_TOKENS = ["-", "|", "'", *"abcdefghijklmnopqrstuvwxyz"]  # flashlight's names for VOCAB


def model_of(tmp_path, sentences, order):
    path = tmp_path / f"lm{order}.arpa"
    write_arpa(path, build_arpa(sentences, order))
    return read_arpa(path), path


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_distribution_sums_to_one(tmp_path, order):
    lm, _ = model_of(tmp_path, CORPUS, order)
    assert lm.order == order
    outcomes = sorted(lm.vocabulary) + [EOS, UNK]
    contexts = {ngram[:-1] for ngram in lm.log_probs} | {ngram for ngram in lm.log_probs if len(ngram) < order}
    contexts = {c for c in contexts if EOS not in c}
    # unseen contexts, unknown words and partly seen ones back off through several orders
    contexts |= {("zzz",), ("go", "zzz"), ("<s>", "zzz"), ("zzz", "go"), ("ten", "go", "back"), ("five", "two")}
    assert len(contexts) > (6 if order == 1 else 30)  # the seen contexts were all found
    for context in contexts:
        total = sum(10 ** lm.score(context, word) for word in outcomes)
        assert total == pytest.approx(1.0, abs=1e-4), context


def test_discount_formulas_and_fallback():
    # Y = 10 / (10 + 2*5) = 0.5; D1 = 1 - 2*0.5*5/10; D2 = 2 - 3*0.5*3/5; D3 = 3 - 4*0.5*2/3
    assert modified_kn_discounts(10, 5, 3, 2) == pytest.approx((0.5, 1.1, 3 - 4 / 3))
    # n4 = 0 gives D3 = 3, outside 0 < D3 < 3: only D3 falls back to 1.5
    assert modified_kn_discounts(2, 3, 1, 0) == pytest.approx((0.25, 1.75, 1.5))
    # n1 = 0: Y is undefined, everything falls back
    assert modified_kn_discounts(0, 3, 0, 0) == (0.5, 1.0, 1.5)
    # n3 large: D2 = 2 - 3*(1/3)*10/2 < 0 falls back; D1 = 1 - 2*(1/3)*2/2
    assert modified_kn_discounts(2, 2, 10, 1) == pytest.approx((1 / 3, 1.0, 3 - 4 / 3 / 10))


def test_hand_computed_bigram_probability(tmp_path):
    # Corpus "a b", "a b", "b a", "a" with order 2.
    # Bigram counts (raw, highest order): <s> a:3, a b:2, b </s>:2, a </s>:2, <s> b:1, b a:1
    #   count-of-counts n1=2 n2=3 n3=1 n4=0 -> D = (0.25, 1.75, 1.5) (D3 by fallback).
    # Unigram continuation counts: a:2 (<s>, b), b:2 (<s>, a), </s>:2 (a, b), <unk>:0
    #   n1=0 -> D = (0.5, 1.0, 1.5) by fallback; total 6; gamma() = 1.0*3/6 = 0.5;
    #   p(b) = (2 - 1)/6 + 0.5 / 4 (uniform over a, b, </s>, <unk>).
    # Context "a": a b:2, a </s>:2 -> total 4, gamma(a) = 1.75*2/4 = 0.875;
    #   p(b | a) = (2 - 1.75)/4 + 0.875 * p(b).
    p_b = 1 / 6 + 0.5 / 4
    p_b_given_a = (2 - 1.75) / 4 + 0.875 * p_b
    lm, _ = model_of(tmp_path, ["a b", "a b", "b a", "a"], 2)
    assert 10 ** lm.log_probs[("b",)] == pytest.approx(p_b, rel=1e-5)
    assert 10 ** lm.score(("a",), "b") == pytest.approx(p_b_given_a, rel=1e-5)
    assert 10 ** lm.backoffs[("a",)] == pytest.approx(0.875, rel=1e-5)
    assert 10 ** lm.score((), UNK) == pytest.approx(0.5 / 4, rel=1e-5)
    assert lm.log_probs[("<s>",)] == -99
    # unseen bigram "b b" backs off: gamma(b) * p(b); context b: b </s>:2, b a:1 -> (1.75 + 0.25)/3
    assert 10 ** lm.score(("b",), "b") == pytest.approx((1.75 + 0.25) / 3 * p_b, rel=1e-5)
    # and sentence_logprob chains <s> a b </s>
    expected = lm.score(("<s>",), "a") + lm.score(("a",), "b") + lm.score(("b",), EOS)
    assert lm.sentence_logprob(["a", "b"]) == pytest.approx(expected)


def test_build_arpa_rejects_bad_input():
    with pytest.raises(ValueError, match="order"):
        build_arpa(["a b"], order=0)
    with pytest.raises(ValueError, match="no words"):
        build_arpa(["", "  "])
    with pytest.raises(ValueError, match="<s>"):
        build_arpa(["<s> a b"])
    # The longest sentence, "a b", is 4 tokens with <s> and </s>: no 5-grams to estimate.
    assert "\\4-grams:" in build_arpa(["a b", "c"], order=4)
    with pytest.raises(ValueError, match="order 5: the longest sentence has 2 words .* at most 4"):
        build_arpa(["a b", "c"], order=5)


def test_lm_build_names_the_text_files_it_cannot_use(tmp_path, capsys):
    from speechrnn.cli import main

    (tmp_path / "good.txt").write_text("go back\n")
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "binary.txt").write_bytes(b"go\n\x80\x81\n")
    arpa = tmp_path / "lm.arpa"
    # A file without words among others: skipped with the CLI's warning line, the LM built.
    assert main(["lm", "build", str(tmp_path / "blank.txt"), str(tmp_path / "good.txt"), "-o", str(arpa)]) == 0
    err = capsys.readouterr().err
    assert f"speechrnn: warning: {tmp_path / 'blank.txt'}: no words in it" in err and "UserWarning" not in err
    assert arpa.is_file()
    # No words at all, or a file that is not UTF-8 text: an error naming the file, nothing written.
    for bad in ("blank.txt", "binary.txt"):
        assert main(["lm", "build", str(tmp_path / bad), "-o", str(tmp_path / "bad.arpa")]) == 2
        assert f"speechrnn: error: {tmp_path / bad}: " in capsys.readouterr().err
    assert not (tmp_path / "bad.arpa").exists()
    # Another package's warning keeps Python's own form: it is not speechrnn's to claim.
    from speechrnn.cli import _warning_printer

    shown = []
    _warning_printer(lambda *args: shown.append(args))(UserWarning("theirs"), UserWarning, str(tmp_path / "other.py"), 3)
    assert len(shown) == 1 and "speechrnn: warning" not in capsys.readouterr().err


def test_kenlm_agrees_with_arpa_model(tmp_path):
    kenlm_module = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    lm, path = model_of(tmp_path, CORPUS, 3)
    words = sorted(lm.vocabulary) + [EOS, UNK, "zebra"]
    dictionary = Dictionary(words)
    kenlm = kenlm_module.KenLM(str(path), dictionary)
    for sentence in (["go", "back", "ten"], ["enter", "zebra", "two", "go"], ["stop", "stop", "yes"]):
        state, total = kenlm.start(False), 0.0
        context: tuple[str, ...] = ("<s>",)
        for word in sentence:
            state, score = kenlm.score(state, dictionary.get_index(word))
            assert score == pytest.approx(lm.score(context, word), abs=1e-4), (context, word)
            total += score
            context = (*context, word)
        state, score = kenlm.finish(state)
        assert total + score == pytest.approx(lm.sentence_logprob(sentence), abs=1e-4)


def test_torchaudio_ctc_decoder_loads_lm_and_lexicon(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    from torchaudio.models.decoder import ctc_decoder

    _, arpa = model_of(tmp_path, CORPUS, 3)
    lexicon = write_lexicon(tmp_path / "lexicon.txt", " ".join(CORPUS).split())
    decoder = ctc_decoder(
        lexicon=str(tmp_path / "lexicon.txt"), tokens=DECODER_TOKENS, lm=str(arpa), nbest=1, beam_size=20,
        lm_weight=0.5, word_score=0.0, blank_token="-", sil_token="|", unk_word=UNK,
    )
    torch.manual_seed(0)
    emissions = torch.randn(1, 40, len(DECODER_TOKENS)).log_softmax(-1)
    best = decoder(emissions)[0][0]
    assert set(decoder.idxs_to_tokens(best.tokens)) <= set(DECODER_TOKENS)
    assert all(word in lexicon for word in best.words)
    # emissions that clearly spell "| g o | b a c k |" decode to those words
    frames = []
    for char in "|go|back|":
        frames += [DECODER_TOKENS.index(char), 0]
    peaked = (10 * torch.nn.functional.one_hot(torch.tensor(frames), len(DECODER_TOKENS)).float()).log_softmax(-1)
    assert decoder(peaked[None])[0][0].words == ["go", "back"]


def valid_arpa_lines():
    return build_arpa(["a b", "b a c"], order=2).splitlines()


def line_of(lines, text):
    return lines.index(text) + 1


@pytest.mark.parametrize("case", ["empty", "no_header", "bad_count", "wrong_fields", "not_a_number", "no_end"])
def test_malformed_arpa_names_file_and_line(tmp_path, case):
    lines = valid_arpa_lines()
    bigram = next(i for i, line in enumerate(lines) if line.endswith("\ta c"))
    if case == "empty":
        lines, error_line = [], 1
    elif case == "no_header":
        lines[0], error_line = "data", 1
    elif case == "bad_count":
        declared = next(i for i, line in enumerate(lines) if line.startswith("ngram 2="))
        lines[declared] = "ngram 2=99"
        error_line = line_of(lines, "\\end\\")  # where the 2-gram section closes short
    elif case == "wrong_fields":
        lines[bigram], error_line = lines[bigram] + "\t-0.1\textra", bigram + 1
    elif case == "not_a_number":
        lines[bigram], error_line = "minus-one\ta c", bigram + 1
    else:
        assert lines[-2:] == ["", "\\end\\"]
        lines = lines[:-2]
        error_line = len(lines)  # the last line of the file
    path = tmp_path / "bad.arpa"
    path.write_text("\n".join(lines))
    with pytest.raises(LMError, match=f"{path}:{error_line}:"):
        read_arpa(path)


def test_arpa_section_longer_than_declared_names_the_extra_line(tmp_path):
    lines = valid_arpa_lines()
    declared = next(i for i, line in enumerate(lines) if line.startswith("ngram 1="))
    n_unigrams = int(lines[declared].split("=")[1])
    lines[declared] = f"ngram 1={n_unigrams - 1}"
    path = tmp_path / "long.arpa"
    path.write_text("\n".join(lines))
    last_unigram = line_of(lines, "\\1-grams:") + n_unigrams
    with pytest.raises(LMError, match=f"{path}:{last_unigram}: more 1-grams"):
        read_arpa(path)


def test_write_arpa_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "lm.arpa"
    write_arpa(path, "old")
    write_arpa(path, build_arpa(["a b"], order=2))
    assert os.listdir(path.parent) == ["lm.arpa"]  # no temporary files left behind
    assert read_arpa(path).vocabulary == {"a", "b"}


def test_an_atomic_write_keeps_links_and_writes_into_what_is_not_a_file(tmp_path):
    from speechrnn.files import write_atomic

    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    write_atomic(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read = []  # (a named pipe's writer and reader wait for each other: the reader in a thread of its own)
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert read == ["through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a pipe, not a file renamed over it
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        write_atomic(tmp_path, "x")
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "pipe", "real.txt"]  # no temporary files left behind


def test_lexicon_round_trip_and_out_of_vocabulary_words(tmp_path):
    path = tmp_path / "lexicon.txt"
    with pytest.warns(UserWarning, match="café"):
        written = write_lexicon(path, ["enter", "don't", "café", "enter", "two"])
    assert written == {"don't": ["d", "o", "n", "'", "t", "|"], "enter": [*"enter", "|"], "two": [*"two", "|"]}
    assert path.read_text().splitlines()[1] == "enter e n t e r |"
    assert read_lexicon(path) == written == build_lexicon(["two", "enter", "don't"])

    path.write_text("yes y e s |\nnaive n a ï v e |\n\nno n o |\n")
    with pytest.warns(UserWarning, match=f"{path}:2: skipping 'naive'"):
        assert read_lexicon(path) == {"yes": [*"yes", "|"], "no": [*"no", "|"]}
    path.write_text("yes y e s |\nno\n")
    with pytest.raises(LMError, match=f"{path}:2:"):
        read_lexicon(path)
    # A spelling is letters, then one word boundary: others are skipped, not decoded as words.
    path.write_text("one o n e\ntwo t | w o |\nthree t h r e e |\n")
    with pytest.warns(UserWarning) as caught:
        assert read_lexicon(path) == {"three": [*"three", "|"]}
    assert [str(w.message).split(": a spelling")[0] for w in caught] == [f"{path}:1: skipping 'one'", f"{path}:2: skipping 'two'"]
    # A file that is not UTF-8 is named with the line, as an ARPA file is.
    path.write_bytes(b"yes y e s |\ncaf\xe9 c a f e |\n")
    with pytest.raises(LMError, match=f"{path}:2: not UTF-8"):
        read_lexicon(path)
    (tmp_path / "bad.arpa").write_bytes(b"\\data\\\n\xff\n")
    with pytest.raises(LMError, match=f"{tmp_path / 'bad.arpa'}:2: not UTF-8"):
        read_arpa(tmp_path / "bad.arpa")


def test_lm_build_reads_a_manifest_s_transcripts_and_names_unspellable_characters(tmp_path, capsys):
    from speechrnn.cli import main

    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"audio": f"{i}.wav", "text": text}) + "\n" for i, text in enumerate(["Go back", "go\tforward 5 & ten"])))
    arpa = tmp_path / "lm.arpa"
    assert main(["lm", "build", str(manifest), "-o", str(arpa), "--order", "2"]) == 0
    assert read_arpa(arpa).vocabulary == {"go", "back", "forward", "ten"}  # not "audio", "text" or file names
    assert "cannot spell ('" in capsys.readouterr().err  # the digit and the ampersand, named
    manifest.write_text(json.dumps({"audio": "0.wav", "text": "go"}) + "\nnot json\n")
    assert main(["lm", "build", str(manifest), "-o", str(arpa)]) == 2
    assert f"{manifest}:2: not a JSON object" in capsys.readouterr().err


def test_build_lm_files_from_an4_transcription(tmp_path):
    transcription = tmp_path / "an4_train.transcription"
    transcription.write_text(
        "<s> GO FORWARD TEN </s> (an1-fash-b)\n<s> GO BACK TWO </s> (an2-fash-b)\n\n<s> YES </s> (an3-fash-b)\n"
    )
    extra = tmp_path / "extra.txt"
    extra.write_text("Go back, ten!\n")
    summary = build_lm_files([transcription, extra], tmp_path / "lm.arpa", tmp_path / "lexicon.txt", order=2)
    assert summary == {"sentences": 4, "words": 10, "vocabulary": 6, "ngrams": {1: 9, 2: 10}}
    lm = read_arpa(tmp_path / "lm.arpa")
    assert lm.vocabulary == {"go", "forward", "ten", "back", "two", "yes"}
    assert set(read_lexicon(tmp_path / "lexicon.txt")) == lm.vocabulary
    assert lm.score(("<s>",), "go") > lm.score(("<s>",), "ten")
    assert math.isclose(sum(10 ** lm.score(("go",), w) for w in [*lm.vocabulary, EOS, UNK]), 1.0, abs_tol=1e-4)
