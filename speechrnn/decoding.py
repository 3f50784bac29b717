"""CTC decoding: per-frame log-probabilities -> text with word times and confidences.

Shapes: ``B`` batch, ``U`` output frames, ``V`` vocabulary size.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import flashlight.lib.text.decoder as fl
import flashlight.lib.text.dictionary as fl_dictionary
from flashlight.lib.text.decoder.kenlm import KenLM
import numpy as np
import torch

from . import lm as lm_module
from .text import Tokenizer, fold_to_ascii, unspellable


class WordTiming(NamedTuple):
    word: str
    start: float  # seconds from the start of the audio to the word's first character frame
    end: float  # seconds to the end of the word's last character frame
    confidence: float  # mean posterior probability of the word's characters, in [0, 1]


class Hypothesis(NamedTuple):
    text: str  # the transcript, normalised (lower case, single spaces)
    tokens: list[int]  # collapsed token indices, blanks removed
    frames: list[int]  # output frame of each token's first emission
    score: float  # greedy: the best path's log-probability; beam search: the search's total score
    words: list[WordTiming]
    alternatives: tuple["Hypothesis", ...] = ()  # beam search with nbest > 1: the runners-up, best first


def greedy_decode(
    log_probs: torch.Tensor,
    out_lens: torch.Tensor,
    tokenizer: Tokenizer,
    frame_shift: float,
    time_offset: float = 0.0,
) -> list[Hypothesis]:
    """Best-path CTC decoding of a batch.

    Args:
        log_probs: ``(B, U, V)`` CTC log-probabilities.
        out_lens: ``(B,)`` valid frames per row.
        tokenizer: the model's vocabulary.
        frame_shift: seconds per output frame.
        time_offset: seconds added to every timestamp.

    Returns:
        One :class:`Hypothesis` per row.
    """
    if log_probs.dim() != 3 or log_probs.shape[-1] != len(tokenizer):
        raise ValueError(f"log_probs must be (B, U, {len(tokenizer)}), got {tuple(log_probs.shape)}")
    if out_lens.shape != log_probs.shape[:1]:
        raise ValueError(f"out_lens must be ({log_probs.shape[0]},), got {tuple(out_lens.shape)}")
    hypotheses = []
    for row in range(log_probs.shape[0]):
        decoder = GreedyDecoder(tokenizer, frame_shift, time_offset)
        decoder.step(log_probs[row, : int(out_lens[row])])
        hypotheses.append(decoder.hypothesis())
    return hypotheses


def emitting_frames(path: list[int], previous: int, blank: int) -> list[bool]:
    """CTC's collapse rule on a frame-level path of token ids: for each frame, whether it emits
    a token (not blank, and unlike the frame before it; ``previous``: the frame before the
    path's first). A plain loop: a streaming chunk's few frames cost NumPy more in calls (about
    4 us a chunk) than in work, and a whole utterance's path only 1.5x more this way."""
    emits = []
    for token in path:
        emits.append(token != blank and token != previous)
        previous = token
    return emits


class Candidate(NamedTuple):
    """One of a running beam search's n best, as a second pass ranks it
    (:meth:`BeamSearchDecoder.current_candidates`)."""

    tokens: list[int]  # what it spells so far (no blanks)
    score: float  # the search's score
    result: object  # the search's own hypothesis, to spell the whole one out from


# Written here: torchaudio's CTC decoders are batch-only beam searches (flashlight-text); best-path
# decoding that can be stepped chunk by chunk and keeps word times is a few lines of its own.
class GreedyDecoder:
    """Online best-path CTC decoding: feed frames chunk by chunk, read the hypothesis any time.

    The work per chunk is proportional to the chunk, not to the audio so far, and feeding
    a sequence in any split gives the same hypothesis as feeding it whole.

    Example:
        >>> decoder = GreedyDecoder(Tokenizer(), frame_shift=0.03)
        >>> decoder.step(torch.zeros(0, 29))
        >>> decoder.hypothesis().text
        ''
    """

    def __init__(self, tokenizer: Tokenizer, frame_shift: float, time_offset: float = 0.0):
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift
        self.time_offset = time_offset
        self.n_frames = 0  # frames decoded so far
        self.last_emission = -1  # frame of the last non-blank token (-1: none yet)
        self.tokens: list[int] = []
        self.frames: list[int] = []
        self.score = 0.0
        self._previous = tokenizer.blank
        self._words: list[WordTiming] = []
        self._text = ""  # the finished words' text, kept as they finish: a partial costs no re-join
        self._chars: list[str] = []
        self._char_probs: list[float] = []
        self._word_first = self._word_last = 0

    def step(self, log_probs: torch.Tensor) -> None:
        """Decode ``(U, V)`` further frames."""
        if log_probs.dim() != 2 or log_probs.shape[-1] != len(self.tokenizer):
            raise ValueError(f"log_probs must be (U, {len(self.tokenizer)}), got {tuple(log_probs.shape)}")
        scores = log_probs.detach().float().cpu().numpy()  # NumPy: a streaming chunk's few frames cost ATen more in calls than in work
        best = scores.argmax(axis=-1)
        best_log_probs = np.take_along_axis(scores, best[:, None], axis=-1)[:, 0]
        self.score += float(best_log_probs.sum())
        self.follow(best.tolist(), np.exp(best_log_probs).tolist())

    def finish(self) -> None:
        """End of the utterance (nothing is held back in best-path decoding)."""

    def follow(self, path: list[int], probs: list[float]) -> None:
        """Extend the hypothesis by a frame-level path: one token per frame with its
        posterior probability (the best path here; a beam search's path in
        :class:`BeamSearchDecoder`)."""
        blank = self.tokenizer.blank
        for offset, (token, prob, emit) in enumerate(zip(path, probs, emitting_frames(path, self._previous, blank))):
            frame = self.n_frames + offset
            if emit:
                self._emit(token, frame, prob)
            elif token != blank and self._char_probs and token != self.tokenizer.space:
                self._char_probs[-1] = max(self._char_probs[-1], prob)  # the same letter held on
            if token != blank:
                self.last_emission = frame
        if path:
            self._previous = path[-1]
        self.n_frames += len(path)

    def peek(self, log_probs: torch.Tensor) -> tuple[str, list[WordTiming]]:
        """The :meth:`transcript` as if ``(U, V)`` further frames followed, leaving the decoder
        as it is (for tentative frames that a later chunk may still change)."""
        with self.tentatively():
            self.step(log_probs)
            return self.transcript()

    @contextlib.contextmanager
    def tentatively(self):
        """Undo on exit whatever is decoded inside the block.

        The cost is that of the block plus the current word, not of the whole utterance: the
        finished words and tokens are only appended to in the block, so they are cut back.
        """
        lengths = len(self.tokens), len(self.frames), len(self._words)
        scalars = (self.n_frames, self.last_emission, self.score, self._previous, self._text, self._word_first, self._word_last)
        chars, char_probs = list(self._chars), list(self._char_probs)
        try:
            yield self
        finally:
            del self.tokens[lengths[0] :], self.frames[lengths[1] :], self._words[lengths[2] :]
            self.n_frames, self.last_emission, self.score, self._previous, self._text, self._word_first, self._word_last = scalars
            self._chars, self._char_probs = chars, char_probs

    def _emit(self, token: int, frame: int, prob: float) -> None:
        self.tokens.append(token)
        self.frames.append(frame)
        if token == self.tokenizer.space:
            self._close_word()
            return
        if not self._chars:
            self._word_first = frame
        self._chars.append(self.tokenizer.vocab[token])
        self._char_probs.append(prob)
        self._word_last = frame

    def _current_word(self) -> WordTiming | None:
        if not self._chars:
            return None
        return WordTiming(
            word="".join(self._chars),
            start=round(self.time_offset + self._word_first * self.frame_shift, 3),
            end=round(self.time_offset + (self._word_last + 1) * self.frame_shift, 3),
            confidence=round(sum(self._char_probs) / len(self._char_probs), 4),
        )

    def _close_word(self) -> None:
        word = self._current_word()
        if word is not None:
            self._words.append(word)
            self._text = f"{self._text} {word.word}" if self._text else word.word
        self._chars, self._char_probs = [], []

    def hypothesis(self) -> Hypothesis:
        """The best path so far (a word still being spelled is included)."""
        text, words = self.transcript()
        return Hypothesis(text=text, tokens=list(self.tokens), frames=list(self.frames), score=self.score, words=words)

    def transcript(self) -> tuple[str, list[WordTiming]]:
        """The text and words of :meth:`hypothesis`, without copying its token lists (a live
        partial's cost then hardly grows with the utterance's length)."""
        current = self._current_word()
        if current is None:
            return self._text, list(self._words)
        return (f"{self._text} {current.word}" if self._text else current.word), [*self._words, current]


# --- Beam search with a word language model -------------------------------------------------
#
# The search itself is flashlight-text's CTC beam search (the engine under torchaudio's
# ``ctc_decoder``), used directly: one lexicon trie and one loaded LM are shared by every
# utterance and stream, where torchaudio's wrapper rebuilds both per decoder, and the decoder's
# best partial hypothesis (flashlight's ``get_best_hypothesis``) is reachable for live results.

# Tokens tried per frame unless a setting says otherwise. A lexicon-free search with a word
# LM asks WordLMAdapter (Python) to score every token it tries, which is most of its time, and
# on the bundled models' AN4 dev and test its 4 likeliest tokens read as well as its 10, in less
# time (session 48: recipes/an4/RESULTS.md); a lexicon search stays in flashlight's C++ and
# keeps 10.
LEXICON_TOKENS = 10
LEXICON_FREE_TOKENS = 4


@dataclass(frozen=True)
class BeamSearchConfig:
    lm: str | None = None  # ARPA word n-gram file (None: beam search on acoustic scores alone)
    lexicon: str | None = None  # lexicon file: only its words are spelled (None: any letter sequence)
    lm_weight: float = 0.5  # weight of the LM's log10 probabilities against the acoustic natural logs
    word_score: float = 0.0  # added for every word (insertion bonus; negative to penalise)
    beam_size: int = 32  # hypotheses kept after each frame
    # Most likely tokens tried per frame; None: the search's own (LEXICON_TOKENS with a
    # lexicon, LEXICON_FREE_TOKENS without).
    beam_size_token: int | None = None
    beam_threshold: float = 25.0  # hypotheses this far below the best are dropped
    nbest: int = 1  # hypotheses returned at the end
    # (word or phrase, boost) pairs: each boost is added to a hypothesis's score every time it
    # spells the word, or the phrase's words in a row (natural-log units, like word_score;
    # negative to avoid them). Words the lexicon lacks join it for this search unless their
    # boost is negative. Boosts are scored through the LM, so lm_weight must be positive where
    # one is not 0.
    hot_words: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if self.beam_size < 1 or (self.beam_size_token is not None and self.beam_size_token < 1) or self.nbest < 1:
            raise ValueError(f"the beam size, tokens per frame and n-best count must be 1 or more, got beam_size {self.beam_size}, beam_size_token {self.beam_size_token}, nbest {self.nbest}")
        # Settings files hold JSON lists; the config keeps hashable pairs.
        object.__setattr__(self, "hot_words", tuple((str(word), float(boost)) for word, boost in self.hot_words))
        numbers = {"lm_weight": self.lm_weight, "word_score": self.word_score, "beam_threshold": self.beam_threshold, **{f"hot word {w!r}": b for w, b in self.hot_words}}
        if not all(math.isfinite(v) for v in numbers.values()):
            raise ValueError(f"beam search weights must be finite numbers, got {', '.join(f'{k} {v}' for k, v in numbers.items() if not math.isfinite(v))}")
        if any(boost for _, boost in self.hot_words) and self.lm_weight <= 0:
            raise ValueError(f"hot words' boosts are scored through the LM, so the LM weight must be positive (got {self.lm_weight})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, base: str | os.PathLike | None = None) -> "BeamSearchConfig":
        """Build from a dict (e.g. a tuning file); relative paths are taken from ``base``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        for key in ("lm", "lexicon"):
            if d.get(key) and base is not None and not Path(d[key]).is_absolute():
                d[key] = str(Path(base) / d[key])
        return cls(**d)


def _quiet_stdio(function, *args):
    """Run ``function`` with the process's stdout and stderr pointed at /dev/null: KenLM
    prints a progress bar when it reads an ARPA file, which would corrupt JSON output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        return function(*args)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


class BeamSearch:
    """Everything beam search shares between utterances: token and word dictionaries, the
    lexicon trie and the loaded LM. :meth:`decoder` makes one per utterance or stream.

    Example:
        >>> search = BeamSearch(BeamSearchConfig(), Tokenizer())
        >>> decoder = search.decoder(frame_shift=0.03)
        >>> decoder.step(torch.zeros(0, 29)); decoder.finish()
        >>> decoder.hypothesis().text
        ''
    """

    def __init__(self, config: BeamSearchConfig, tokenizer: Tokenizer):
        self.config = config
        self.tokenizer = tokenizer
        space = tokenizer.vocab[tokenizer.space]
        self.tokens = fl_dictionary.Dictionary([lm_module.WORD_BOUNDARY if token == space else token for token in tokenizer.vocab])
        self.silence = tokenizer.space
        self.arpa = lm_module.read_arpa(config.lm) if config.lm else None  # validates the file, names bad lines
        if self.arpa is not None:
            letters = lm_module.spelling_letters(tokenizer)
            words = [w for w in self.arpa.vocabulary if w not in (lm_module.BOS, lm_module.EOS, lm_module.UNK)]
            foreign = [w for w in words if set(w) - letters]
            if words and len(foreign) > len(words) / 2:  # an upper-case LM, say: its words never match what the model spells
                warnings.warn(
                    f"{config.lm}: {len(foreign)} of its {len(words)} words are not spelled with the model's letters ({''.join(sorted(letters))}), "
                    f"e.g. {' '.join(sorted(foreign)[:5])}: the LM cannot score them (write its words in lower case, as `speechrnn lm build` does)",
                    stacklevel=2,
                )
        self.hot_words = hot_word_boosts(config.hot_words, tokenizer)  # {word: boost}
        self.lexicon = self.reader = None
        if config.lexicon:
            lexicon = lm_module.read_lexicon(config.lexicon, tokenizer)
            if not lexicon:
                raise ValueError(f"{config.lexicon}: the lexicon has no usable words")
            if self.arpa is not None:
                missing = sorted(set(lexicon) - self.arpa.vocabulary)
                if missing:
                    warnings.warn(f"{config.lexicon}: {len(missing)} lexicon words are not in the LM {config.lm} (scored as <unk>): {' '.join(missing[:10])}", stacklevel=2)
            # Hot words the lexicon lacks join it (an LM without them scores them as <unk>), but
            # not those with a negative boost: they are there to be avoided.
            wanted = {word for phrase, boost in self.hot_words.items() if boost >= 0 for word in phrase.split()}
            lexicon.update(lm_module.build_lexicon(wanted - set(lexicon), tokenizer))
            self.lexicon = lexicon
            self.reader = LexiconReader(lexicon, tokenizer)  # reads live partials' word in progress
            spellings = {word: [list(spelling)] for word, spelling in lexicon.items()}
            spellings.setdefault(lm_module.UNK, [[lm_module.UNK]])
            self.words = fl_dictionary.create_word_dict(spellings)
            self.unk = self.words.get_index(lm_module.UNK)
            self.words.set_default_index(self.unk)
            self.lm = _quiet_stdio(KenLM, config.lm, self.words) if self.arpa is not None else fl.ZeroLM()
        self._weigh_hot_words(config)
        self.options = self._options(config)
        self.rescorer = None  # a second model re-ranking the n best (speechrnn.rescoring.Rescorer), or None

    def _weigh_hot_words(self, config: BeamSearchConfig) -> None:
        """What the hot words' boosts make at ``config``'s LM weight, once per search: the boosts
        in LM units (the search multiplies LM scores by the weight; words of no boost left out)
        and, with a lexicon, its trie (whose look-ahead includes them)."""
        boosts = {phrase: boost / config.lm_weight for phrase, boost in self.hot_words.items() if boost}
        if self.lexicon is not None:  # a phrase with a word the lexicon lacks is never spelled
            boosts = {phrase: boost for phrase, boost in boosts.items() if all(word in self.lexicon for word in phrase.split())}
        self.phrases = HotPhrases(boosts) if boosts else None
        if self.lexicon is not None:
            self.trie = self._trie()
            # Single words' LM holds no state: one for every decoder (phrases need one each).
            self.word_lm = HotWordLM(self.lm, self.phrases, self.words) if self.phrases is not None and not self.phrases.openings else None

    def _trie(self):
        """The lexicon's spellings, each word's leaf scored with its unigram and what hot words
        and phrases give it (LM units) and smeared up the trie: the search's look-ahead inside
        a word."""
        trie = fl.Trie(self.tokens.index_size(), self.silence)
        start = self.lm.start(False)
        known = self.arpa.vocabulary if self.arpa is not None else None  # (None: no LM, no word unknown)
        for word, spelling in self.lexicon.items():
            index = self.words.get_index(word)
            _, score = self.lm.score(start, index)
            boost = self.phrases.trie_boost(word, known is None or word in known) if self.phrases is not None else 0.0
            trie.insert([self.tokens.get_index(t) for t in spelling], index, score + boost)
        trie.smear(fl.SmearingMode.MAX)
        return trie

    def _options(self, config: BeamSearchConfig):
        common = dict(
            beam_size=config.beam_size,
            beam_size_token=min(self.tokens_per_frame(config), len(self.tokenizer)),
            beam_threshold=config.beam_threshold,
            lm_weight=config.lm_weight,
            log_add=False,
            criterion_type=fl.CriterionType.CTC,
        )
        if self.lexicon is not None:
            return fl.LexiconDecoderOptions(word_score=config.word_score, unk_score=float("-inf"), sil_score=0.0, **common)
        # Without a lexicon flashlight scores the LM per token; our word LM is applied at word
        # boundaries by a small adapter, and the word bonus goes with each boundary.
        return fl.LexiconFreeDecoderOptions(sil_score=config.word_score, **common)

    def tokens_per_frame(self, config: BeamSearchConfig) -> int:
        """The most likely tokens ``config``'s search tries per frame."""
        if config.beam_size_token is not None:
            return config.beam_size_token
        return LEXICON_TOKENS if self.lexicon is not None else LEXICON_FREE_TOKENS

    def reweighted(self, lm_weight: float, word_score: float) -> "BeamSearch":
        """The same search (sharing the loaded LM, lexicon and trie) with other weights."""
        return self.with_config(dataclasses.replace(self.config, lm_weight=lm_weight, word_score=word_score))

    def with_config(self, config: BeamSearchConfig) -> "BeamSearch":
        """The same LM and lexicon (shared, not reloaded) with ``config``'s other settings:
        weights, beam sizes, threshold."""
        if (config.lm, config.lexicon, config.hot_words) != (self.config.lm, self.config.lexicon, self.config.hot_words):
            raise ValueError(
                f"with_config keeps the LM, lexicon and hot words ({self.config.lm}, {self.config.lexicon}, {self.config.hot_words});"
                f" got ({config.lm}, {config.lexicon}, {config.hot_words})"
            )
        search = copy.copy(self)
        search.config = config
        search.options = self._options(config)
        if self.hot_words and config.lm_weight != self.config.lm_weight:
            search._weigh_hot_words(config)  # the boosts are in LM units
        return search

    def with_rescorer(self, rescorer) -> "BeamSearch":
        """The same search whose n best a :class:`~speechrnn.rescoring.Rescorer` re-ranks (None: none)."""
        search = copy.copy(self)
        search.rescorer = rescorer
        return search

    @property
    def decoder_nbest(self) -> int:
        """Hypotheses a decoder returns: those asked for, or the rescorer's if more."""
        return max(self.config.nbest, self.rescorer.config.nbest if self.rescorer is not None else 1)

    def decoder(self, frame_shift: float, time_offset: float = 0.0) -> "BeamSearchDecoder":
        """A fresh decoder for one utterance (or stream)."""
        # (LMs written here hold one utterance's states: one per decoder)
        if self.lexicon is not None:
            # (without boosts, the LM itself: its calls stay in C++)
            lm = self.lm
            if self.phrases is not None:
                lm = self.word_lm or HotPhraseLM(self.lm, self.phrases, self.words)
            engine = fl.LexiconDecoder(self.options, self.trie, lm, self.silence, self.tokenizer.blank, self.unk, [], False)
        else:
            lm = WordLMAdapter(self.arpa, self.tokenizer, self.phrases) if self.arpa is not None or self.phrases is not None else fl.ZeroLM()
            engine = fl.LexiconFreeDecoder(self.options, lm, self.silence, self.tokenizer.blank, [])
        return BeamSearchDecoder(engine, lm, self.tokenizer, frame_shift, time_offset, self.decoder_nbest, self.reader)


# The boost a hot word gets unless one is given (natural-log units, like word_score): chosen
# on AN4 dev (recipes/an4/RESULTS.md, session 58).
HOT_WORD_BOOST = 0.0


def parse_hot_word(text: str, boost: float) -> tuple[str, float]:
    """``"WORDS"`` or ``"WORDS:BOOST"`` (the command line's ``--hot-word``: a word, or a phrase
    of words between spaces) -> ``(words, boost)``."""
    words, colon, value = text.rpartition(":")
    if not colon:
        return text, boost
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"hot word {text!r}: {value!r} is not a finite number (expected WORDS or WORDS:BOOST)")
    return words, number


def read_hot_words(path: str | os.PathLike, boost: float, tokenizer: Tokenizer) -> list[tuple[str, float]]:
    """A file's hot words and phrases, one ``WORDS[:BOOST]`` a line (``boost`` where none is
    given; blank lines and ``#`` comments skipped), as ``(words, boost)`` pairs; a line that is
    not one ``tokenizer`` spells raises ValueError naming the file and line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        for number, line in enumerate(lines, 1):
            text = line.partition("#")[0].strip()
            if not text:
                continue
            try:
                words, boost_here = parse_hot_word(text, boost)
                hot_word_boosts([(words, boost_here)], tokenizer)
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: {error}") from None
            pairs.append((words, boost_here))
    return pairs


def hot_word_boosts(pairs, tokenizer: Tokenizer) -> dict[str, float]:
    """``{normalised word or phrase: boost}`` of (words, boost) pairs, a phrase's words joined by
    one space; one the model cannot spell (a word of other characters than its letters and
    apostrophe) raises ValueError."""
    boosts: dict[str, float] = {}
    letters = lm_module.spelling_letters(tokenizer)
    for text, boost in pairs:
        # Folded as normalize_text folds, whose dropping of the characters the model cannot
        # spell must be an error here, not a different word.
        words = fold_to_ascii(text).split()
        if not words or unspellable(text) or any(not any(c.isalpha() for c in word) or set(word) - letters for word in words):
            raise ValueError(f"hot word {text!r}: words of the model's letters ({''.join(sorted(letters))}) are expected")
        phrase = " ".join(words)
        if phrase in boosts:
            raise ValueError(f"hot word {text!r} is given twice")
        boosts[phrase] = float(boost)
    return boosts


class HotPhrases:
    """Hot words' and phrases' boosts (LM units) along a transcript, for the LMs below: a
    phrase's boost is given each time its last word ends it, and looked ahead while it is being
    spelled (a prefix carries the largest boost of the phrases it begins, at least 0 as it may
    begin anything else), so a boosted phrase is not pruned before it is finished; the
    look-ahead is taken back where the transcript leaves the phrase.

    A context is the longest run of last words that begins a phrase of several words (``()``
    when none does). Every phrase that the next word ends is a run of the context's last words
    and that word, and the context after it is a run of those too, so the context is all a
    search needs to carry (the words' automaton of Aho and Corasick).

    Written here: flashlight's decoders take one LM, and neither they nor KenLM boost words.

    Example:
        >>> phrases = HotPhrases({"new york": 3.0, "york": 1.0})
        >>> phrases.advance((), "new")  # -> the context, the boosts of the phrases ended
        (('new',), 0.0)
        >>> phrases.advance(("new",), "york"), phrases.look_ahead(("new",), "yo")
        (((), 4.0), 3.0)
    """

    def __init__(self, boosts: dict[str, float]):
        self.boosts = {tuple(phrase.split()): boost for phrase, boost in boosts.items()}
        self.prefix_boosts: dict[str, float] = {}  # spelling prefix ("new yo") -> its look-ahead
        self.openings: set[tuple[str, ...]] = set()  # word runs that begin a longer phrase
        self.continued: dict[str, float] = {}  # word -> largest boost of a phrase it continues (>= 0)
        for words, boost in self.boosts.items():
            text = " ".join(words)
            for end in range(1, len(text) + 1):
                self.prefix_boosts[text[:end]] = max(self.prefix_boosts.get(text[:end], 0.0), boost)
            self.openings.update(words[:n] for n in range(1, len(words)))
            for word in words[1:]:
                self.continued[word] = max(self.continued.get(word, 0.0), boost)
        self.words = {word for words in self.boosts for word in words}
        self._advance: dict = {}  # (context, word) -> (context, boost), as a search repeats them

    def advance(self, context: tuple[str, ...], word: str) -> tuple[tuple[str, ...], float]:
        """The context after ``word``, and the boosts of the phrases it ends."""
        if word not in self.words:
            return (), 0.0
        key = (context, word)
        found = self._advance.get(key)
        if found is None:
            run = context + (word,)
            boost = sum(self.boosts.get(run[start:], 0.0) for start in range(len(run)))
            following = next((run[start:] for start in range(len(run)) if run[start:] in self.openings), ())
            found = self._advance[key] = (following, boost)
        return found

    def look_ahead(self, context: tuple[str, ...], letters: str = "") -> float:
        """The boost looked ahead at ``context`` with ``letters`` of the next word spelled."""
        if not context:  # (most calls: single words, or no phrase begun)
            return self.prefix_boosts.get(letters, 0.0)
        texts = [" ".join(context[start:] + (letters,)) for start in range(len(context))] + [letters]
        return max(self.prefix_boosts.get(text, 0.0) for text in texts)

    def word_score(self, context: tuple[str, ...], word: str, letters_given: bool) -> tuple[tuple[str, ...], float]:
        """The context after ``word`` and its boost less the look-ahead given before it (at
        ``context``, with its letters where ``letters_given``), plus the next one's."""
        following, boost = self.advance(context, word)
        given = self.look_ahead(context, word if letters_given else "")
        return following, boost + self.look_ahead(following) - given

    def trie_boost(self, word: str, known: bool = False) -> float:
        """A lexicon trie's look-ahead over ``word``'s letters (a trie knows no context): what
        it gains at a transcript's start, or, for a word the LM lacks (not ``known``), the
        largest boost of a phrase it continues: the word before gave that look-ahead to every
        word that follows, and the words other than this one take it back once spelled, but
        the trie's own look-ahead, the word's unigram, is ``<unk>``'s, which would prune it
        within the word before the boost comes."""
        start = self.word_score((), word, False)[1]
        return start if known else max(start, self.continued.get(word, float("-inf")))


class HotWordLM(fl.LM):
    """A lexicon search's LM (KenLM, or no LM) plus hot words' boosts, for single words: the
    LM's own states pass through (:class:`HotPhraseLM` for phrases)."""

    def __init__(self, inner, phrases: HotPhrases, words):
        super().__init__()
        self.inner = inner
        self.boosts = {words.get_index(word): phrases.advance((), word)[1] for word in phrases.words}

    def start(self, start_with_nothing: bool):
        return self.inner.start(start_with_nothing)

    def score(self, state, word: int):
        state, score = self.inner.score(state, word)
        return state, score + self.boosts.get(word, 0.0)

    def finish(self, state):
        return self.inner.finish(state)


class HotPhraseLM(fl.LM):
    """A lexicon search's LM (KenLM, or no LM) plus hot words' and phrases' boosts
    (:class:`HotPhrases`): the hot context is part of its states, one search's. (Hot words
    alone take :class:`HotWordLM`, a third less time: their context is always empty.)"""

    def __init__(self, inner, phrases: HotPhrases, words):
        super().__init__()
        self.inner = inner
        self.phrases = phrases
        self.by_index = {words.get_index(word): word for word in phrases.words}
        self._keys: dict = {}  # state -> (inner state, context)
        self._states: dict = {}  # (inner state, context) -> state

    def _state(self, parent, key):
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = parent.child(len(self._states))
            self._keys[state] = key
        return state

    def start(self, start_with_nothing: bool):
        self._keys.clear()
        self._states.clear()
        root = fl.LMState()
        key = (self.inner.start(start_with_nothing), ())
        self._states[key], self._keys[root] = root, key
        return root

    def score(self, state, word: int):
        inner, context = self._keys[state]
        inner, score = self.inner.score(inner, word)
        context, boost = self.phrases.word_score(context, self.by_index.get(word, ""), False)
        return self._state(state, (inner, context)), score + boost

    def finish(self, state):
        inner, context = self._keys[state]
        inner, score = self.inner.finish(inner)
        return self._state(state, (inner, ())), score - self.phrases.look_ahead(context)


class WordLMAdapter(fl.LM):
    """A word n-gram LM scored by a lexicon-free beam search, which feeds it characters:
    letters of a word cost nothing, the word boundary (and the end of the utterance) score the
    finished word, so words outside the LM are still spelled, as ``<unk>``. Without an LM
    (``arpa`` None) every word scores 0.

    Hot words' and phrases' boosts (``phrases``, LM units) are looked ahead letter by letter
    and settled at word boundaries (:class:`HotPhrases`).

    flashlight merges hypotheses whose LM states are the same object, so each distinct
    (word history, hot context, letters so far) has exactly one state here.
    """

    def __init__(self, arpa, tokenizer: Tokenizer, phrases: HotPhrases | None = None):
        super().__init__()
        self.arpa = arpa
        self.tokenizer = tokenizer
        self.history = max(0, arpa.order - 1) if arpa is not None else 0
        self.phrases = phrases if phrases is not None else HotPhrases({})
        self.letters = {i: c for i, c in enumerate(tokenizer.vocab) if i not in (tokenizer.blank, tokenizer.space)}
        self._keys: dict = {}  # LMState -> (history words, hot context, letters)
        self._states: dict = {}  # (history words, hot context, letters) -> LMState
        self._transitions: dict = {}  # (LMState, token) -> (LMState, score), as the search repeats them

    def _state(self, parent, key):
        state = self._states.get(key)
        if state is None:
            state = parent.child(len(self._states))
            self._states[key] = state
            self._keys[state] = key
        return state

    def start(self, start_with_nothing: bool):
        self._keys.clear()
        self._states.clear()
        self._transitions.clear()
        self._root = fl.LMState()
        key = ((), (), "") if start_with_nothing else ((lm_module.BOS,), (), "")
        self._states[key] = self._root
        self._keys[self._root] = key
        return self._root

    def score(self, state, token: int):
        cached = self._transitions.get((state, token))
        if cached is None:
            cached = self._transitions[state, token] = self._score(state, token)
        return cached

    def _score(self, state, token: int):
        history, context, letters = self._keys[state]
        if token == self.tokenizer.space:
            if not letters:
                return state, 0.0
            context, score = self._word_score(history, context, letters)
            return self._state(state, (self._push(history, letters), context, "")), score
        letter = self.letters.get(token)
        if letter is None:
            return state, 0.0
        look_ahead = self.phrases.look_ahead(context, letters + letter) - self.phrases.look_ahead(context, letters)
        return self._state(state, (history, context, letters + letter)), look_ahead

    def _word_score(self, history: tuple, context: tuple, word: str) -> tuple[tuple, float]:
        """The hot context after the finished word, and the word's LM score and boost less the
        look-ahead its letters were given."""
        context, boost = self.phrases.word_score(context, word, True)
        return context, boost + (self.arpa.score(history, word) if self.arpa is not None else 0.0)

    def finish(self, state):
        history, context, letters = self._keys[state]
        total = 0.0
        if letters:
            context, total = self._word_score(history, context, letters)
            history = self._push(history, letters)
        if self.arpa is not None:
            total += self.arpa.score(history, lm_module.EOS)
        return self._state(state, (history, (), "\0end")), total - self.phrases.look_ahead(context)

    def _push(self, history: tuple, word: str) -> tuple:
        return (history + (word,))[-self.history :] if self.history else ()


class LexiconReader:
    """The best CTC path over some frames whose letters spell lexicon words: finished words,
    each closed by a space, then the start of one more (acoustic scores only, no LM).

    Live partials with a lexicon read the frames after the beam search's last finished word
    with it when their best path leaves the lexicon ("e a s" for "erase"): the search itself
    reports a word only once it has ended. Where the best path spells lexicon words it is also
    this path (the best of all paths is the best of those that spell), so it is only needed then.

    Written here: flashlight's lexicon decoder gives no reading of the word in progress, and
    a Viterbi pass over a letter trie is a few array operations per frame.

    Example:
        >>> tokenizer = Tokenizer()
        >>> reader = LexiconReader(["erase", "rubout"], tokenizer)
        >>> frames = torch.full((5, 29), -9.0)
        >>> for t, letter in enumerate("eaas"): frames[t, tokenizer.index[letter]] = 0.0
        >>> frames[1, tokenizer.index["r"]] = -1.0  # "r" second best where "a" was read first
        >>> frames[4, tokenizer.blank] = 0.0
        >>> tokenizer.decode(reader.best_path(frames.numpy()))  # the best path reads "e a a s": "eas"
        'eras'
    """

    def __init__(self, words, tokenizer: Tokenizer):
        words = set(words)
        prefixes = sorted({word[:n] for word in words for n in range(1, len(word) + 1)}, key=lambda p: (len(p), p))
        node = {"": 0, **{prefix: i + 1 for i, prefix in enumerate(prefixes)}}  # node 0: between words
        self.tokenizer = tokenizer
        self.parent = np.array([0] + [node[prefix[:-1]] for prefix in prefixes])
        self.letter = np.array([tokenizer.blank] + [tokenizer.index[prefix[-1]] for prefix in prefixes])
        # A letter equal to the one before it needs a blank between (CTC merges repeats).
        self.repeat = self.letter == self.letter[self.parent]
        self.repeat[0] = True
        self.words = np.array([node[word] for word in sorted(words)])
        self._prefixes, self._finished = frozenset(node), frozenset(words)

    def spells(self, path: list[int]) -> bool:
        """Whether ``path`` (one token per frame, from between words) spells lexicon words:
        each closed by a space, then the start of one more. Then it needs no reading."""
        word, previous = "", self.tokenizer.blank
        for token in path:
            if token != previous and token != self.tokenizer.blank:
                if token == self.tokenizer.space:
                    if word and word not in self._finished:
                        return False
                    word = ""
                else:
                    word += self.tokenizer.vocab[token]
                    if word not in self._prefixes:
                        return False
            previous = token
        return True

    def best_path(self, log_probs: np.ndarray) -> list[int]:
        """``(U, V)`` log-probabilities -> the best spelling path, one token per frame."""
        return self.path(self.advance(self.start(), log_probs))

    def start(self) -> "Reading":
        """The state before the first frame: between words."""
        after_blank = np.full(len(self.parent), -np.inf)
        after_blank[0] = 0.0
        return Reading(np.full(len(self.parent), -np.inf), after_blank, -np.inf, ())

    def advance(self, reading: "Reading", log_probs: np.ndarray) -> "Reading":
        """The state after ``(U, V)`` further frames (``reading`` itself is left as it is).

        States per trie node: its last letter being emitted (``letter``) or a blank after it
        (``after_blank``; at node 0, between words), and ``in_space`` (a word just closed).
        """
        blank, space = self.tokenizer.blank, self.tokenizer.space
        letter, after_blank, in_space, back = reading.letter, reading.after_blank, reading.in_space, list(reading.back)
        for frame in np.asarray(log_probs, dtype=np.float64):
            at_root = max(after_blank[0], in_space)
            before = after_blank.copy()
            before[0] = at_root
            # letter: 0 stayed on its letter, 1 came after the parent's letter, 2 after its blank (or the root)
            after_letter = letter[self.parent]
            after_letter[self.repeat] = -np.inf
            after_parent_blank = before[self.parent]
            best = np.maximum(letter, after_letter)
            letter_from = (after_letter > letter).astype(np.int8)
            letter_from[after_parent_blank > best] = 2
            letter_next = np.maximum(best, after_parent_blank)
            letter_next += frame[self.letter]
            letter_next[0] = -np.inf
            # blank: 0 after the node's letter, 1 after its blank; the root also after a space
            blank_from = after_blank >= letter
            blank_next = frame[blank] + np.maximum(letter, after_blank)
            blank_next[0] = frame[blank] + at_root
            # space: repeated, after the root's blank, or closing a finished word (after its letter or blank)
            word_letter, word_blank = self.words[letter[self.words].argmax()], self.words[after_blank[self.words].argmax()]
            candidates = {("space", 0): in_space, ("blank", 0): after_blank[0], ("letter", int(word_letter)): letter[word_letter], ("blank", int(word_blank)): after_blank[word_blank]}
            space_from = max(candidates, key=candidates.get)
            back.append((letter_from, blank_from, space_from, after_blank[0] >= in_space))
            letter, after_blank, in_space = letter_next, blank_next, frame[space] + candidates[space_from]
        return Reading(letter, after_blank, in_space, tuple(back))

    def path(self, reading: "Reading") -> list[int]:
        """The best path to ``reading``'s best state, one token per frame read."""
        letter, after_blank = reading.letter, reading.after_blank
        finals = {("letter", int(letter.argmax())): letter.max(), ("blank", int(after_blank.argmax())): after_blank.max(), ("space", 0): reading.in_space}
        kind, node = max(finals, key=finals.get)
        path = []
        for letter_from, blank_from, space_from, root_by_blank in reversed(reading.back):
            if kind == "letter":
                path.append(int(self.letter[node]))
                came = letter_from[node]
                if came:  # from the parent: after its letter (1) or its blank (2)
                    node = int(self.parent[node])
                    if came == 2:
                        kind = "blank" if node or root_by_blank else "space"
            elif kind == "blank":
                path.append(self.tokenizer.blank)
                if node == 0:
                    kind = "blank" if root_by_blank else "space"
                elif not blank_from[node]:
                    kind = "letter"
            else:
                path.append(self.tokenizer.space)
                kind, node = space_from
        return path[::-1]


class Reading(NamedTuple):
    """A :class:`LexiconReader`'s Viterbi state after some frames (scores of the best paths
    ending in each state, and each frame's back-pointers)."""

    letter: np.ndarray
    after_blank: np.ndarray
    in_space: float
    back: tuple


class BeamSearchDecoder:
    """One utterance's beam search, fed chunk by chunk like :class:`GreedyDecoder`.

    :meth:`hypothesis` returns, before :meth:`finish`, the best hypothesis up to its last
    finished word followed by the best path of the frames since (the word being spoken, read
    letter by letter until the search settles on it), and after it the best final hypothesis.
    Word times and confidences come from the best path's frames and posteriors, as in greedy
    decoding.

    A long utterance (a stream without endpointing) would keep its whole search history. At
    every ``prune_every`` frames from the utterance's start the search forgets what lies more
    than ``prune_lookback`` frames back (flashlight's ``prune``; it goes further back to the
    last finished word), and the best path up to there is committed: later hypotheses all
    continue it. The boundaries are fixed frame counts, so any chunking of the same frames
    decodes identically; utterances shorter than ``prune_every`` frames are never pruned.
    """

    prune_every = 500  # frames: 10 s at 20 ms steps
    prune_lookback = 150  # frames: 3 s at 20 ms steps
    _LOOKBACK_SLACK = 100  # flashlight walks up to this many frames further back (kLookBackLimit)

    def __init__(self, engine, lm, tokenizer: Tokenizer, frame_shift: float, time_offset: float, nbest: int, reader: LexiconReader | None = None):
        self.engine = engine
        self.reader = reader  # the lexicon's reader of the frames after the last finished word (None: no lexicon)
        self._reading: tuple[int, int, Reading] | None = None  # (first frame, frames read, state) of the reader's last pass
        self.lm = lm  # kept alive as long as the engine that calls it
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift
        self.time_offset = time_offset
        self.nbest = nbest
        self.n_frames = 0
        self.last_emission = -1  # last frame whose best token is not blank (for endpointing)
        self.finished = False
        self._committed = GreedyDecoder(tokenizer, frame_shift, time_offset)  # the pruned-away prefix
        self._log_probs = torch.empty(0, len(tokenizer))  # (capacity, V); rows of frames committed onwards
        engine.decode_begin()

    @property
    def frames_in_search(self) -> int:
        """Frames the search still holds (those after the committed prefix)."""
        return self.n_frames - self._committed.n_frames

    def step(self, log_probs: torch.Tensor) -> None:
        """Decode ``(U, V)`` further frames."""
        if log_probs.dim() != 2 or log_probs.shape[-1] != len(self.tokenizer):
            raise ValueError(f"log_probs must be (U, {len(self.tokenizer)}), got {tuple(log_probs.shape)}")
        if self.finished:
            raise RuntimeError("the decoder has finished; start a new one")
        emissions = log_probs.detach().to("cpu", torch.float32)
        while emissions.shape[0]:
            boundary = (self.n_frames // self.prune_every + 1) * self.prune_every
            block, emissions = emissions[: boundary - self.n_frames], emissions[boundary - self.n_frames :]
            self._decode(block.contiguous())
            if self.n_frames == boundary:
                self._prune()

    def _decode(self, emissions: torch.Tensor) -> None:
        self.engine.decode_step(emissions.data_ptr(), emissions.shape[0], emissions.shape[1])
        held, end = self.frames_in_search, self.frames_in_search + emissions.shape[0]
        if end > self._log_probs.shape[0]:  # grow by doubling: appending stays O(1) per frame
            grown = torch.empty(max(end, 2 * self._log_probs.shape[0]), emissions.shape[1])
            grown[:held] = self._log_probs[:held]
            self._log_probs = grown
        self._log_probs[held:end] = emissions
        speech = (emissions.argmax(dim=-1) != self.tokenizer.blank).nonzero()
        if len(speech):
            self.last_emission = self.n_frames + int(speech[-1])
        self.n_frames += emissions.shape[0]

    def _prune(self) -> None:
        if self.frames_in_search <= self.prune_lookback + self._LOOKBACK_SLACK:
            return
        # The best hypothesis's ancestor at the frame where prune() cuts (both look back alike).
        ancestor = self.engine.get_best_hypothesis(self.prune_lookback)
        path = self._path(ancestor, len(ancestor.tokens) - 1)
        if not path:
            return
        self.engine.prune(self.prune_lookback)
        self._committed.follow(path, self._path_probs(path))
        held = self.frames_in_search
        self._log_probs = self._log_probs[len(path) : len(path) + held].clone()

    def finish(self) -> None:
        """End of the utterance: the LM scores the end of sentence, and the search ends."""
        if not self.finished:
            if self.reader is not None:  # lexicon words end at a word boundary
                self._end_word()
            self.engine.decode_end()
            self.finished = True

    def _end_word(self) -> None:
        # The lexicon spells every word with a closing word boundary, and flashlight drops the
        # hypotheses still inside a word when the search ends, but the acoustic model does not
        # end an utterance with a space: a last word whose letters also make a word of their
        # own would lose its ending ("a l a n" -> "a l a", the search keeping "a"). One more
        # frame that is certainly the boundary closes it. It is not a frame of the audio: it
        # stays out of n_frames, times and the paths read back (`_path` cuts at n_frames).
        frame = torch.full((1, len(self.tokenizer)), -1e4)
        frame[0, self.tokenizer.space] = 0.0
        self.engine.decode_step(frame.data_ptr(), 1, frame.shape[1])

    def hypothesis(self) -> Hypothesis:
        if self.finished:
            results = self._current_results() or [None]
            best = self._to_hypothesis(results[0])
            return best._replace(alternatives=tuple(self._to_hypothesis(r) for r in results[1:]))
        return self._to_hypothesis(self.engine.get_best_hypothesis(0) if self.n_frames else None)

    def current_hypotheses(self) -> list[Hypothesis]:
        """Before :meth:`finish`: the n best hypotheses at the last frame, best first, each
        spelled along its own path (its finished words, then the letters of the word it is
        in). After it: :meth:`hypotheses`."""
        if self.finished:
            return self.hypotheses()
        return [self._to_hypothesis(r) for r in self._current_results()]

    def current_candidates(self) -> list[Candidate]:
        """:meth:`current_hypotheses` (after :meth:`finish`: :meth:`hypotheses`) as token lists
        and scores only, without their words, times and confidences; what re-ranking them needs,
        at a fraction of the cost. :meth:`candidate_hypothesis` spells out those kept; a second
        pass re-ranks these (:func:`~speechrnn.rescoring.final_hypothesis`, and live partials in
        :class:`~speechrnn.streaming.StreamingRecognizer`)."""
        return [Candidate(self._spelled_tokens(self._full_path(r, probs=False)[0]), float(r.score), r) for r in self._current_results()]

    def _current_results(self) -> list:
        # The search's n best, best first: at the last frame, or (finished) its final ones.
        if self.finished:
            return self.engine.get_all_final_hypothesis()[: self.nbest]
        if not self.n_frames:
            return []
        return sorted(self.engine.get_all_final_hypothesis(), key=lambda r: -r.score)[: self.nbest]

    def candidate_hypothesis(self, candidate: Candidate) -> Hypothesis:
        """The whole hypothesis of one of :meth:`current_candidates` (as :meth:`current_hypotheses` lists it)."""
        return self._to_hypothesis(candidate.result)

    def _spelled_tokens(self, path: list[int]) -> list[int]:
        # The tokens the committed prefix followed by ``path`` spells (GreedyDecoder.follow's rule).
        committed = self._committed
        emits = emitting_frames(path, committed._previous, self.tokenizer.blank)
        return committed.tokens + [token for token, emit in zip(path, emits) if emit]

    def hypotheses(self) -> list[Hypothesis]:
        """The n best final hypotheses, best first (after :meth:`finish`)."""
        if not self.finished:
            raise RuntimeError("n-best lists are available after finish()")
        best = self.hypothesis()
        return [best._replace(alternatives=()), *best.alternatives]

    def _path(self, result, n_frames: int) -> list[int]:
        # flashlight's path has one token before the first frame it holds (the start state, or
        # after pruning the last committed frame's) and, once finished, one after the last;
        # token i + 1 belongs to held frame i.
        path = list(result.tokens)[1 : n_frames + 1] if result is not None else []
        return [self.tokenizer.blank if t < 0 else t for t in path]

    def _path_probs(self, path: list[int]) -> list[float]:
        return self._log_probs[: len(path)].gather(1, torch.tensor(path)[:, None])[:, 0].exp().tolist()

    def transcript(self) -> tuple[str, list[WordTiming]]:
        """The text and words of :meth:`hypothesis` (for live partials: no token lists copied)."""
        if self.finished:  # once per utterance
            best = self.hypothesis()
            return best.text, best.words
        with self._follow(self.engine.get_best_hypothesis(0) if self.n_frames else None) as builder:
            return builder.transcript()

    def peek(self, log_probs: torch.Tensor) -> tuple[str, list[WordTiming]]:
        """The :meth:`transcript` as if ``(U, V)`` further frames followed, leaving the search as
        it is: they are read with the frames after the search's last word (for tentative frames
        that a later chunk may still change). They may start a word: read on a path that spells
        lexicon words (:class:`LexiconReader`), such words are not the partials' most frequent
        revision they were on the best path alone (`scripts/bench_streaming.py` on AN4 test,
        beside a training run: word latency 128 / 323 ms median / p95 and 93.6% of partials
        prefixes of the final, against 168 / 351 ms and 95.4% when they could only continue a word)."""
        if self.finished:
            return self.transcript()
        with self._follow(self.engine.get_best_hypothesis(0) if self.n_frames else None, ahead=log_probs) as builder:
            return builder.transcript()

    def _to_hypothesis(self, result) -> Hypothesis:
        with self._follow(result) as builder:
            hyp = builder.hypothesis()
        return hyp._replace(score=float(result.score) if result is not None else 0.0)

    def _read(self, start: int, frames: torch.Tensor, n_tail: int) -> Reading:
        """The reader's state after ``frames`` (held frames from ``start`` on, then any tentative
        ones past the first ``n_tail``). The state after those ``n_tail`` is kept: while the
        search's last word ends at the same frame, the next call reads only the frames added since."""
        first = self._committed.n_frames + start  # from the utterance's start: pruning keeps it
        if self._reading is None or self._reading[0] != first or self._reading[1] > n_tail:
            self._reading = (first, 0, self.reader.start())
        _, n_read, reading = self._reading
        reading = self.reader.advance(reading, frames[n_read:n_tail].numpy())
        self._reading = (first, n_tail, reading)
        return self.reader.advance(reading, frames[n_tail:].numpy())

    def _full_path(self, result, ahead: torch.Tensor | None = None, probs: bool = True) -> tuple[list[int], list[float]]:
        """``result``'s path over the frames the search holds, then (before :meth:`finish`) the
        frames after it and ``ahead`` as :meth:`_follow` reads them; with each token's
        posterior probability (``probs``), else an empty list."""
        path = self._path(result, self.frames_in_search)
        path_probs = self._path_probs(path) if probs else []
        if not self.finished:
            tail = self._log_probs[len(path) : self.frames_in_search]
            frames = tail if ahead is None else torch.cat([tail, ahead.to(tail.dtype)])
            spelled = frames.argmax(dim=-1).tolist()
            if self.reader is not None and not self.reader.spells(spelled):
                # The best path leaves the lexicon: show the best path that spells lexicon words
                # (the search itself settles on a word only when it ends).
                spelled = self.reader.path(self._read(len(path), frames, tail.shape[0]))
            path += spelled
            if probs:
                path_probs += frames[torch.arange(len(spelled)), torch.tensor(spelled, dtype=torch.long)].exp().tolist()
        return path, path_probs

    @contextlib.contextmanager
    def _follow(self, result, ahead: torch.Tensor | None = None):
        """The committed prefix continued by ``result``'s path, undone on exit.

        Before :meth:`finish`, flashlight's best partial hypothesis ends at its last finished
        word (``get_best_hypothesis`` walks back to it), so the frames after it, and then the
        ``(U, V)`` frames ``ahead`` if given, are read on the best path, as greedy decoding reads
        them, or where that leaves the lexicon, on the best path that spells lexicon words: a
        partial shows the word being spoken before the search settles on it (and may respell
        it then).
        """
        path, probs = self._full_path(result, ahead)
        with self._committed.tentatively() as builder:
            if path:
                builder.follow(path, probs)
            yield builder


def tuning_path(model_path: str | os.PathLike) -> Path:
    """Where a model's decoding settings live: ``MODEL.lm.json`` beside ``MODEL.pt``."""
    return Path(model_path).with_suffix(".lm.json")


def read_settings(path: str | os.PathLike) -> dict:
    """A model's decoding settings (``MODEL.lm.json``, written by ``speechrnn lm tune`` or the
    recipes' ``--bundle``), or a ValueError naming the file."""
    try:
        settings = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable decoding settings file ({error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: not a readable decoding settings file (a JSON object expected)")
    return settings


def partner_file(name: str | os.PathLike, beside: Path | None = None) -> Path | None:
    """The model file a ``partners`` entry (or a ``--rescore`` argument) names, resolved: a file
    ``beside`` the settings file, else a path or a bundled model's name; None if there is none."""
    from .model import resolve_model_path

    try:
        return (beside / name if beside is not None and (beside / name).is_file() else resolve_model_path(name)).resolve()
    except FileNotFoundError:
        return None


def partner_weight(settings: dict, settings_path: Path | None, partner: str | os.PathLike) -> float | None:
    """The weight a model's decoding settings record for ``partner`` as an opt-in second pass,
    or None. ``settings["partners"]`` maps partners (a model file beside the settings file, or a
    bundled model's name) to what was measured with them: the ``weight`` AN4 dev chose, and the
    WER it gave (recomputed by tests/test_rescoring.py); ``partner`` matches an entry naming the
    same file, however either is spelled (``offline`` or ``speechrnn/models/offline.pt``)."""
    partners = settings.get("partners") or {}
    if not isinstance(partners, dict) or not all(
        isinstance(record, dict) and isinstance(record.get("weight"), (int, float)) and not isinstance(record["weight"], bool) for record in partners.values()
    ):
        raise ValueError(f"{settings_path}: partners must map partner models to records with a numeric weight, got {partners!r}")
    if not partners:
        return None

    wanted = partner_file(partner)  # as the user gave it (a path from here, or a bundled name)
    if wanted is None:
        return None
    here = settings_path.parent if settings_path is not None else None
    return next((float(record["weight"]) for name, record in partners.items() if partner_file(name, here) == wanted), None)


def beam_search_for(
    model,
    lm: str | os.PathLike | None = "default",
    lexicon: str | os.PathLike | None = None,
    rescore: str | os.PathLike | None = "default",
    rescore_weight: float | None = None,
    **overrides,
) -> BeamSearch | None:
    """The beam search a model decodes with, or None for greedy decoding.

    Args:
        model: a loaded :class:`~speechrnn.model.SpeechModel` (its file's ``.lm.json``, written
            by ``speechrnn lm tune``, holds its LM and tuned weights).
        lm: ``"default"`` (the model's tuned LM if it has one, else greedy), ``"none"``/None
            (greedy), or the path of an ARPA file (decoded with the model's tuned weights if
            any; without a lexicon unless ``lexicon`` is given).
        lexicon: a lexicon file, ``"none"`` for lexicon-free search, or None (the setting's own).
        rescore: ``"default"`` (the second-pass rescoring the settings file holds, if any, with
            the model's tuned LM only), ``"none"``/None (no rescoring), or a partner model's
            name or file (:mod:`speechrnn.rescoring`).
        rescore_weight: the partner's weight (default: the one tuned for that partner in the
            settings file, else the settings' second pass's, else 0.25).
        overrides: :class:`BeamSearchConfig` fields to change (None values are ignored).
    """
    from .rescoring import RescoreConfig, Rescorer

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if lm is None or str(lm) == "none":
        if overrides.get("hot_words"):
            raise ValueError("hot words are words a beam search spells; greedy decoding (LM 'none') has no search")
        return None
    tuned = tuning_path(model.source) if getattr(model, "source", None) else None
    config = rescoring = None
    settings: dict = {}
    if tuned is not None and tuned.is_file():
        settings = read_settings(tuned)
        try:
            config = BeamSearchConfig.from_dict(settings, base=tuned.parent)
            if settings.get("rescore") and str(lm) == "default":
                rescoring = RescoreConfig.from_dict(settings["rescore"], base=tuned.parent)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{tuned}: not a readable decoding settings file ({error})") from None
    if rescore is None or str(rescore) == "none":
        rescoring = None
    elif str(rescore) != "default":
        # A partner whose weight AN4 dev chose for this model (the settings' "partners")
        # keeps it; another takes the tuned second pass's weight, else the default.
        weight = partner_weight(settings, tuned, rescore)
        if weight is None and rescoring is not None:
            weight = rescoring.weight
        rescoring = RescoreConfig(str(rescore), **({"weight": weight} if weight is not None else {}))
    if rescoring is not None and rescore_weight is not None:
        rescoring = dataclasses.replace(rescoring, weight=rescore_weight)
    settings_kind = config is not None and config.lexicon is not None  # a lexicon search, as tuned
    if config is not None and str(lm) == "default":  # the settings' own files are read
        for kind, path in [("LM", config.lm)] + ([("lexicon", config.lexicon)] if lexicon is None else []):
            if path and not Path(path).is_file():
                raise FileNotFoundError(
                    f"{tuned}: its {kind} {path} is missing (the settings name it relative to themselves: "
                    "move a model, its .lm.json and its LM files together, or decode with --lm none or --lm FILE)"
                )
    if str(lm) != "default":
        if not Path(lm).is_file():
            raise FileNotFoundError(f"no LM file {str(lm)!r}")
        config = dataclasses.replace(config or BeamSearchConfig(), lm=str(lm), lexicon=None)
    if lexicon is not None:
        if str(lexicon) != "none" and not Path(lexicon).is_file():
            raise FileNotFoundError(f"no lexicon file {str(lexicon)!r}")
        config = dataclasses.replace(config or BeamSearchConfig(), lexicon=None if str(lexicon) == "none" else str(lexicon))
    if config is None and not overrides:
        return None
    if config is not None and (config.lexicon is not None) != settings_kind:
        # The settings' tokens per frame were chosen for the other kind of search (with or
        # without a lexicon): this one takes its own kind's (BeamSearch.tokens_per_frame).
        config = dataclasses.replace(config, beam_size_token=None)
    config = dataclasses.replace(config or BeamSearchConfig(), **overrides)
    search = BeamSearch(config, model.tokenizer)
    return search.with_rescorer(Rescorer(rescoring, model.tokenizer)) if rescoring is not None else search


def new_decoder(model, search: BeamSearch | None, time_offset: float = 0.0) -> "GreedyDecoder | BeamSearchDecoder":
    """A decoder for one utterance of ``model``: greedy, or ``search``'s beam search."""
    if search is None:
        return GreedyDecoder(model.tokenizer, model.config.frame_shift, time_offset)
    return search.decoder(model.config.frame_shift, time_offset)
