"""Second-pass rescoring: the beam search's n best transcripts re-ranked by a second model.

Two models trained apart put their CTC spikes on different frames, so their frame
log-probabilities cannot be averaged (averaging two offline runs read AN4 dev at 35.89% WER,
recipes/an4/RESULTS.md); the probability each gives a whole transcript, summed over all its
alignments, can be added. The first pass's beam search proposes ``nbest`` transcripts, and each
is scored

    search score (acoustic + LM weight * LM + word bonus) + weight * log P_partner(text | audio)

where ``log P_partner`` is the CTC log-likelihood of the transcript under the partner model's
frames for the same audio; the best is kept. For a streaming model the partner is a
bidirectional one, run over each utterance once it ends (a two-pass recognizer: partials come
from the stream, finals are re-ranked); for a bidirectional model, a model trained otherwise.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .decoding import Hypothesis

# Re-ranked live partials: the share an utterance grows by between two re-rankings
# (StreamingRecognizer's rescore_growth; AN4 dev chose it, recipes/an4/RESULTS.md session 32).
RESCORE_GROWTH = 0.25


@dataclass(frozen=True)
class RescoreConfig:
    model: str  # the partner: a bundled model's name or a model file
    weight: float = 0.25  # weight of the partner's log-likelihood against the search's score (what AN4 dev chose for most pairs of bundled models)
    nbest: int = 16  # transcripts the first pass proposes
    max_seconds: float = 30.0  # longer utterances keep the first pass's best (a stream buffers at most this much audio)

    def __post_init__(self):
        if self.nbest < 1 or self.max_seconds <= 0:
            raise ValueError("rescoring needs nbest >= 1 and max_seconds > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, base: str | os.PathLike | None = None) -> "RescoreConfig":
        """Build from a dict (a tuning file's ``rescore``); a relative model path is taken from
        ``base`` when a file is there, else read as a bundled model's name."""
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        if base is not None and "model" in d and (Path(base) / d["model"]).is_file():
            d["model"] = str(Path(base) / d["model"])
        return cls(**d)


def ctc_log_likelihoods(log_probs: torch.Tensor, sequences: list[list[int]], blank: int = 0) -> list[float]:
    """Natural log of the probability of each token sequence (collapsed, no blanks) under the
    same ``(U, V)`` CTC log-probabilities, summed over all its alignments (torch's CTC forward
    algorithm, all sequences in one call); ``-inf`` where ``U`` frames cannot hold one."""
    if not sequences:
        return []
    lengths = torch.tensor([len(tokens) for tokens in sequences])
    targets = torch.zeros(len(sequences), max(1, int(lengths.max())), dtype=torch.long)
    for row, tokens in enumerate(sequences):
        targets[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    losses = F.ctc_loss(
        log_probs.float()[:, None, :].expand(-1, len(sequences), -1),
        targets,
        torch.full((len(sequences),), log_probs.shape[0]),
        lengths,
        blank=blank,
        reduction="none",
    )
    return (-losses).tolist()


def ctc_log_likelihood(log_probs: torch.Tensor, tokens: list[int], blank: int = 0) -> float:
    """:func:`ctc_log_likelihoods` of one token sequence."""
    return ctc_log_likelihoods(log_probs, [tokens], blank)[0]


class Rescorer:
    """A loaded partner model and the weight of its vote (:class:`RescoreConfig`)."""

    def __init__(self, config: RescoreConfig, tokenizer=None, partner=None):
        """
        Args:
            config: the partner and its weight.
            tokenizer: the first-pass model's; the partner must spell with the same tokens.
            partner: the partner model already loaded (else loaded from ``config.model``).
        """
        from .model import load_model

        self.config = config
        self.partner = partner if partner is not None else load_model(config.model)
        if tokenizer is not None and list(self.partner.tokenizer.vocab) != list(tokenizer.vocab):
            raise ValueError(f"{config.model}: the rescoring model's vocabulary differs from the first pass model's")
        self.max_samples = int(config.max_seconds * self.partner.config.frontend.sample_rate)

    def reweighted(self, weight: float) -> "Rescorer":
        """The same partner (not reloaded) with another weight."""
        return Rescorer(dataclasses.replace(self.config, weight=weight), partner=self.partner)

    def applies(self, n_samples: int) -> bool:
        """Whether an utterance of ``n_samples`` 16 kHz samples is rescored."""
        return 0 < n_samples <= self.max_samples

    def partner_log_probs(self, waves, batch_size: int | None = None) -> dict[int, torch.Tensor]:
        """``index -> (U, V)`` partner log-probabilities of the ``(N,)`` 16 kHz waveforms this
        second pass applies to (the others are left out), batched as whole-file recognition
        batches them (``batch_size`` None: its default)."""
        from .transcribe import BATCH_SIZE, emissions  # (transcribe imports this module)

        rescored = [i for i, wave in enumerate(waves) if self.applies(wave.shape[0])]
        batches = emissions(self.partner, [waves[i] for i in rescored], batch_size or BATCH_SIZE)
        return {rescored[j]: log_probs for j, log_probs in batches}

    def choose(self, best: Hypothesis, partner_log_probs: torch.Tensor) -> Hypothesis:
        """The first pass's ``best`` and its alternatives re-ranked; the alternatives keep their
        order among themselves and the scores become the combined ones."""
        candidates = [best._replace(alternatives=()), *best.alternatives]
        ranked = [candidates[i]._replace(score=score) for i, score in self.ranking(candidates, partner_log_probs)]
        return ranked[0]._replace(alternatives=tuple(ranked[1:]))

    def ranking(self, candidates, partner_log_probs: torch.Tensor) -> list[tuple[int, float]]:
        """``(index, combined score)`` of the first pass's ``candidates`` (anything with
        ``tokens`` and ``score``, best first), best first; equal scores keep the first pass's order."""
        scores = self.combined_scores(candidates, partner_log_probs)
        return sorted(enumerate(scores), key=lambda pair: -pair[1])  # (sorted() is stable)

    def combined_scores(self, candidates, partner_log_probs: torch.Tensor) -> list[float]:
        """Each candidate's search score plus the weighted partner log-likelihood of its tokens
        (:func:`combined_score`)."""
        likelihoods = ctc_log_likelihoods(partner_log_probs, [h.tokens for h in candidates], self.partner.tokenizer.blank)
        return [combined_score(h.score, [(self.config.weight, ll)]) for h, ll in zip(candidates, likelihoods)]


def combined_score(score: float, votes) -> float:
    """A search ``score`` plus each ``(weight, log-likelihood)`` partner vote. A partner at
    weight 0 has no vote, even for a transcript its frames cannot hold (log-likelihood -inf,
    where 0 * -inf would make the score NaN and the ranking arbitrary)."""
    return score + sum(weight * likelihood for weight, likelihood in votes if weight)


def final_hypothesis(search, decoder, partner_log_probs: Callable[[], torch.Tensor | None] | None = None) -> Hypothesis:
    """An utterance's final hypothesis from its finished decoder: the n best re-ranked when
    ``search`` (a :class:`~speechrnn.decoding.BeamSearch` or None) has a rescorer and
    ``partner_log_probs`` gives the partner's frames (called only when there are runners-up;
    None from it: not re-ranked), and cut to the n-best length the search's config asks for.
    Only the hypotheses kept are spelled out with their words, times and confidences."""
    if search is None:
        return decoder.hypothesis()
    candidates = decoder.current_candidates()
    ranking = [(i, candidate.score) for i, candidate in enumerate(candidates)]
    if search.rescorer is not None and partner_log_probs is not None and len(candidates) > 1:
        partner = partner_log_probs()
        if partner is not None:
            ranking = search.rescorer.ranking(candidates, partner)
    if not ranking:
        return decoder.hypothesis()  # (an empty search: its empty hypothesis)
    best, *rest = (decoder.candidate_hypothesis(candidates[i])._replace(score=score) for i, score in ranking[: search.config.nbest])
    return best._replace(alternatives=tuple(rest))
