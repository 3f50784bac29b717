"""Several second-pass partners at once: does their sum judge a model's n best better than one?

Usage:
    .venv/bin/python scripts/partner_grid.py MODEL PARTNER [PARTNER ...] [--weights 0 0.25 ...]
        [--nbest 16] [--beam-size B] [--an4 ../shared/data/an4]

Decodes AN4 dev and test once with MODEL's tuned beam search, keeping its n best, and scores
every hypothesis under each partner (the CTC log-likelihood of its tokens, as ``--rescore``
does). Then it re-ranks at every combination of the partners' weights:

    search score + sum over partners of weight * log P_partner(text | audio)

and prints one JSON object: the first pass alone, each partner alone and all of them together,
each at the weights AN4 dev chooses (lowest WER, then CER, then the smaller sum of weights),
with dev's and test's WER and CER; and the oracle WER of the n best (each utterance's best
transcript among them: what a perfect re-ranking could reach) and how many distinct transcripts
an utterance's n best hold. A partner alone is what ``speechrnn lm tune --rescore-model``
chooses over the same weights. One partner is what speechrnn's second pass runs; this measures
whether a second pass with more would be worth building.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from typing import NamedTuple

import numpy as np

from speechrnn.data import DEFAULT_AN4, an4_eval_split, load_waves
from speechrnn.decoding import beam_search_for
from speechrnn.evaluate import error_rates, word_errors
from speechrnn.model import load_model
from speechrnn.rescoring import RescoreConfig, Rescorer, combined_score, ctc_log_likelihoods
from speechrnn.tuning import RESCORE_WEIGHTS
from speechrnn.transcribe import decode, emissions_in_order

class Split(NamedTuple):
    references: list[str]
    candidates: list[list]  # per utterance: the n best hypotheses, best first
    likelihoods: list[list[tuple[float, ...]]]  # per utterance, per hypothesis: its log-likelihood under each partner

    def error_rates(self, weights) -> tuple[float, float]:
        """WER and CER (percent) of the n best re-ranked at ``weights`` (one per partner)."""
        texts = []
        for candidates, likelihoods in zip(self.candidates, self.likelihoods):
            combined = [combined_score(h.score, zip(weights, votes)) for h, votes in zip(candidates, likelihoods)]
            texts.append(candidates[combined.index(max(combined))].text)  # (the first of equals, as Rescorer keeps the search's order)
        return error_rates(self.references, texts)

    def oracle_wer(self) -> float:
        """WER (percent) when each utterance keeps whichever of its n best has the fewest word
        errors: what a perfect re-ranking could reach."""
        errors = 0
        for reference, candidates in zip(self.references, self.candidates):
            errors += min(word_errors(reference, h.text) for h in candidates)
        return 100 * errors / sum(len(reference.split()) for reference in self.references)


def scored_split(model, search, rescorers: list[Rescorer], utterances) -> Split:
    """``utterances`` decoded by ``search`` (its n best) and scored under each partner."""
    waves = load_waves(utterances)
    candidates = []
    for log_probs in emissions_in_order(model, waves):
        best = decode(model, log_probs, search)
        candidates.append([best._replace(alternatives=()), *best.alternatives])
    frames = [rescorer.partner_log_probs(waves) for rescorer in rescorers]
    likelihoods = []
    for i, hypotheses in enumerate(candidates):
        tokens = [h.tokens for h in hypotheses]
        rows = [ctc_log_likelihoods(f[i], tokens, model.tokenizer.blank) if i in f else [0.0] * len(tokens) for f in frames]  # (not rescored: as the first pass ranks)
        likelihoods.append(list(zip(*rows)))
    return Split([u.text for u in utterances], candidates, likelihoods)


def chosen(splits: dict[str, Split], dev: dict[tuple, tuple[float, float]], combinations: list[tuple[float, ...]]) -> dict:
    """The combination dev chooses among ``combinations`` (``dev``: each one's dev WER and CER),
    with its dev and test figures."""
    weights = min(combinations, key=lambda w: (*dev[w], sum(w)))
    row = {"weights": list(weights)}
    for name, split in splits.items():
        wer, cer = dev[weights] if name == "dev" else split.error_rates(weights)
        row[name] = {"wer": round(wer, 2), "cer": round(cer, 2)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="the first pass: a bundled model's name or a model file (decoded with its tuned LM settings)")
    parser.add_argument("partners", nargs="+", help="partner models: bundled names or model files")
    parser.add_argument("--weights", type=float, nargs="+", default=list(RESCORE_WEIGHTS), help="weights tried for each partner (default: lm tune's)")
    parser.add_argument("--nbest", type=int, default=RescoreConfig.nbest)
    parser.add_argument("--beam-size", type=int, help="the first pass's beam (default: the model's tuned one)")
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    args = parser.parse_args()

    model = load_model(args.model)
    search = beam_search_for(model, "default")
    if search is None:
        parser.error(f"{args.model}: no tuned LM settings to decode with")
    beam_size = args.beam_size or search.config.beam_size
    search = search.with_config(dataclasses.replace(search.config, nbest=max(args.nbest, search.config.nbest), beam_size=beam_size))
    rescorers = [Rescorer(RescoreConfig(partner, nbest=args.nbest), model.tokenizer) for partner in args.partners]
    splits = {name: scored_split(model, search, rescorers, an4_eval_split(args.an4, name)) for name in ("dev", "test")}

    n = len(args.partners)
    weights = sorted(set(args.weights) | {0.0})
    grid = list(itertools.product(weights, repeat=n))
    dev = {combination: splits["dev"].error_rates(combination) for combination in grid}  # each read once
    alone = []
    for k, partner in enumerate(args.partners):
        row = chosen(splits, dev, [w for w in grid if all(x == 0 for j, x in enumerate(w) if j != k)])
        alone.append({"partner": partner, "weight": row.pop("weights")[k], **row})
    print(json.dumps({
        "model": args.model,
        "partners": args.partners,
        "nbest": args.nbest,
        "beam_size": beam_size,
        "weights_tried": weights,
        "first_pass": chosen(splits, dev, [(0.0,) * n]),
        "oracle_wer": {name: round(split.oracle_wer(), 2) for name, split in splits.items()},
        "mean_distinct": {name: round(float(np.mean([len({h.text for h in c}) for c in split.candidates])), 2) for name, split in splits.items()},
        "alone": alone,
        "together": chosen(splits, dev, grid),
    }))


if __name__ == "__main__":
    main()
