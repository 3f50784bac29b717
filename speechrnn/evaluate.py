"""Word and character error rates of a model on labelled utterances."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import jiwer

from .data import Utterance, load_waves
from .decoding import BeamSearch, Hypothesis
from .model import SpeechModel
from .transcribe import BATCH_SIZE, recognize


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """Corpus WER and CER in percent (jiwer)."""
    counts = error_counts(references, hypotheses)
    return counts["wer"], counts["cer"]


def error_counts(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Corpus WER and CER in percent, and the word errors by kind (``substitutions``,
    ``deletions``, ``insertions``), from one jiwer word alignment."""
    references, hypotheses = list(references), list(hypotheses)
    words = jiwer.process_words(references, hypotheses)
    return {
        "wer": 100 * words.wer, "cer": 100 * jiwer.cer(references, hypotheses),
        "substitutions": words.substitutions, "deletions": words.deletions, "insertions": words.insertions,
    }


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions of one transcript (jiwer): summed over a corpus and
    divided by its reference words, the corpus WER."""
    alignment = jiwer.process_words(reference, hypothesis)
    return alignment.substitutions + alignment.deletions + alignment.insertions


@dataclass
class Evaluation:
    wer: float  # percent
    cer: float  # percent
    n_utterances: int
    audio_seconds: float
    decode_seconds: float  # features + model + decoding, audio already in memory
    hypotheses: list[Hypothesis]

    @property
    def rtf(self) -> float:
        return self.decode_seconds / self.audio_seconds

    def summary(self) -> dict:
        return {"wer": round(self.wer, 2), "cer": round(self.cer, 2), "n": self.n_utterances, "rtf": round(self.rtf, 4)}


def evaluate(
    model: SpeechModel, utterances: Sequence[Utterance], batch_size: int = BATCH_SIZE, search: BeamSearch | None = None, remove_dc: bool = False,
    remove_hum: float | None = None,
) -> Evaluation:
    """Decode ``utterances`` (greedy, or with ``search``; ``remove_dc``, ``remove_hum`` as for
    :func:`~speechrnn.transcribe.recognize`) and score them against their transcripts."""
    waves = load_waves(utterances)
    started = time.perf_counter()
    hyps = recognize(model, waves, batch_size=batch_size, search=search, remove_dc=remove_dc, remove_hum=remove_hum)
    seconds = time.perf_counter() - started
    wer, cer = error_rates([u.text for u in utterances], [h.text for h in hyps])
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    return Evaluation(wer, cer, len(utterances), audio_seconds, seconds, hyps)
