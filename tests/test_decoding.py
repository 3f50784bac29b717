from __future__ import annotations

import pytest
import torch

from speechrnn.decoding import GreedyDecoder, emitting_frames, greedy_decode
from speechrnn.text import Tokenizer

TOK = Tokenizer()


def log_probs_for(path: list[str], peak: float = 0.9) -> torch.Tensor:
    """(1, U, V) log-probabilities whose best path spells ``path`` ('_' is blank)."""
    probs = torch.full((len(path), len(TOK)), (1 - peak) / (len(TOK) - 1))
    for t, symbol in enumerate(path):
        probs[t, 0 if symbol == "_" else TOK.index[symbol]] = peak
    return probs.log()[None]


def test_collapses_repeats_and_blanks_with_word_times():
    path = list("__gg_o__ _yyee_s__")
    hyp = greedy_decode(log_probs_for(path), torch.tensor([len(path)]), TOK, frame_shift=0.03)[0]
    assert hyp.text == "go yes"
    assert [w.word for w in hyp.words] == ["go", "yes"]
    go, yes = hyp.words
    assert (go.start, go.end) == pytest.approx((0.06, 0.18))
    assert (yes.start, yes.end) == pytest.approx((0.30, 0.48))
    assert go.confidence == pytest.approx(0.9, abs=1e-4)


def test_repeated_letter_needs_a_blank_between():
    path = list("_l_l_") + list("ll")
    hyp = greedy_decode(log_probs_for(path), torch.tensor([len(path)]), TOK, frame_shift=0.03)[0]
    assert hyp.text == "lll"


def test_emitting_frames_is_the_collapse_rule_across_a_split():
    """The frames that emit a token: not blank and unlike the frame before, the frame before a
    path's first being the one given (a split path emits as the whole one does)."""
    a, l, blank = TOK.index["a"], TOK.index["l"], TOK.blank
    path = [blank, a, a, blank, a, l, l, a]
    assert emitting_frames(path, blank, blank) == [False, True, False, False, True, True, False, True]
    assert emitting_frames(path[3:], path[2], blank) == [False, True, True, False, True]
    assert emitting_frames(path[1:], a, blank)[0] is False  # the 'a' before it continues
    assert emitting_frames([], a, blank) == []


def test_lengths_limit_decoding_and_offset_shifts_times():
    path = list("_a_b")
    hyp = greedy_decode(log_probs_for(path), torch.tensor([2]), TOK, frame_shift=0.03, time_offset=10.0)[0]
    assert hyp.text == "a" and hyp.words[0].start == pytest.approx(10.03)


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, U, 29\)"):
        greedy_decode(torch.zeros(3, 29), torch.tensor([3]), TOK, 0.03)
    with pytest.raises(ValueError, match="out_lens"):
        greedy_decode(torch.zeros(1, 3, 29), torch.tensor([3, 3]), TOK, 0.03)


def test_peek_leaves_the_decoder_as_it_was():
    # Peeking at frames that close a word, start another and repeat a letter must undo all of it.
    frames = log_probs_for(list("__gg_o_ _yy"))[0]
    ahead = log_probs_for(list("yee_s _nn"))[0]
    rest = log_probs_for(list("oo__ _"))[0]
    peeked, plain = GreedyDecoder(TOK, 0.02), GreedyDecoder(TOK, 0.02)
    peeked.step(frames), plain.step(frames)

    text, words = peeked.peek(ahead)
    assert text == "go yes n" and [w.word for w in words] == ["go", "yes", "n"]
    assert peeked.hypothesis() == plain.hypothesis()
    assert (peeked.n_frames, peeked.last_emission) == (plain.n_frames, plain.last_emission)

    peeked.step(rest), plain.step(rest)
    assert peeked.hypothesis() == plain.hypothesis()
    assert peeked.hypothesis().text == "go yo"
    assert peeked.transcript() == (peeked.hypothesis().text, peeked.hypothesis().words)
