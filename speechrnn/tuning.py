"""Tuning a model's beam search (LM weight and word bonus, and the LM and beam size among several) on a development set.

The acoustic model runs once; every setting then decodes the same stored log-probabilities.
The chosen settings are written beside the model (``MODEL.lm.json``), where
:func:`speechrnn.decoding.beam_search_for` finds them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .data import Utterance, load_waves
from .decoding import BeamSearch, BeamSearchConfig, tuning_path
from .evaluate import error_rates
from .lm import build_lm_files
from .model import SpeechModel, load_model
from .files import write_atomic
from .rescoring import RescoreConfig, Rescorer
from .transcribe import decode, emissions_in_order

LM_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
WORD_SCORES = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
# Beam sizes tried by default (`speechrnn lm tune`, recipes/an4). On AN4 dev with the bundled
# models' tuned weights, 16 -> 32 -> 64 changed the streaming model's WER (18.51 / 18.28 / 17.61%)
# and 128 (with 29 tokens per frame and threshold 50) no further; the offline model's not at all.
TUNED_BEAM_SIZES = (16, 32, 64)


def search_configs(
    lms: Sequence[str | None], lexicon: str | None, beam_sizes: Sequence[int] = TUNED_BEAM_SIZES, hot_words: Sequence[tuple[str, float]] = ()
) -> list[BeamSearchConfig]:
    """The base configs :func:`tune` searches for these LMs and beam sizes (each with
    ``hot_words``), in its tie order: the smaller beam first (cheaper), then the LMs in the
    order given."""
    return [BeamSearchConfig(lm=lm, lexicon=lexicon, beam_size=beam, hot_words=tuple(hot_words)) for beam in sorted(set(beam_sizes)) for lm in lms]


# Weights of a rescoring model's log-likelihood tried by `speechrnn lm tune --rescore-model`
# (0: the first pass alone).
RESCORE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@dataclass
class Tuning:
    best: BeamSearchConfig
    dev_wer: float  # percent, with ``best``
    dev_cer: float
    greedy_wer: float  # percent, greedy decoding of the same set
    grid: list[dict]  # {"lm", "beam_size", "lm_weight", "word_score", "wer", "cer"} for every setting tried
    n_utterances: int
    decode_rtf: float  # beam search seconds per audio second at the best setting (one process)
    rescore: RescoreConfig | None = None  # the second pass chosen (None: none, or not tuned)
    rescore_grid: list[dict] = field(default_factory=list)  # {"weight", "wer", "cer"} for every weight tried
    first_pass_wer: float | None = None  # percent, ``best`` without the second pass


def tune(
    model: SpeechModel,
    utterances: Sequence[Utterance],
    base: BeamSearchConfig | Sequence[BeamSearchConfig],
    lm_weights: Sequence[float] = LM_WEIGHTS,
    word_scores: Sequence[float] = WORD_SCORES,
    log=None,
) -> Tuning:
    """Grid search of ``lm_weight`` x ``word_score`` (other settings from ``base``) for the
    lowest WER on ``utterances`` (then CER); ties go to the smaller LM weight, then the smaller
    bonus. With several base configs (say LMs of different orders, or beam sizes), each is
    searched and the best of all kept, ties going to the earlier config."""
    bases = [base] if isinstance(base, BeamSearchConfig) else list(base)
    waves = load_waves(utterances)
    log_probs = emissions_in_order(model, waves)
    references = [u.text for u in utterances]
    greedy_wer, _ = error_rates(references, [decode(model, lp).text for lp in log_probs])
    audio_seconds = sum(w.shape[0] for w in waves) / model.config.frontend.sample_rate
    grid, best, loaded = [], None, {}
    several_lms = len({b.lm for b in bases}) > 1
    several_beams = len({b.beam_size for b in bases}) > 1
    for base in bases:
        key = (base.lm, base.lexicon)
        if key not in loaded:
            loaded[key] = BeamSearch(base, model.tokenizer)  # each LM and lexicon is read once
        base_search = loaded[key].with_config(base)
        boosted = any(boost for _, boost in base.hot_words)
        if boosted and not any(weight > 0 for weight in lm_weights):
            raise ValueError(f"hot words' boosts are scored through the LM: the LM weights to try ({', '.join(map(str, lm_weights))}) need a positive one")
        for lm_weight in lm_weights:
            if boosted and lm_weight <= 0:
                continue  # (hot words' boosts go through the LM's score: no weight, no boost)
            for word_score in word_scores:
                search = base_search.reweighted(lm_weight, word_score)
                config = search.config
                started = time.perf_counter()
                hyps = [decode(model, lp, search).text for lp in log_probs]
                seconds = time.perf_counter() - started
                wer, cer = error_rates(references, hyps)
                grid.append({"lm": config.lm, "beam_size": config.beam_size, "lm_weight": lm_weight, "word_score": word_score, "wer": round(wer, 2), "cer": round(cer, 2)})
                if best is None or (wer, cer) < best[0]:
                    best = ((wer, cer), config, seconds)
                if log:
                    name = f"{Path(config.lm or 'no LM').name} " if several_lms else ""
                    name += f"beam {config.beam_size} " if several_beams else ""
                    print(f"{name}lm_weight {lm_weight:g} word_score {word_score:g}: WER {wer:.2f}% CER {cer:.2f}%", file=log, flush=True)
    (wer, cer), config, seconds = best
    return Tuning(config, wer, cer, greedy_wer, grid, len(utterances), seconds / audio_seconds)


def with_rescoring(tuning: Tuning, chosen: RescoringChoice) -> Tuning:
    """``tuning`` with the second pass :func:`choose_rescoring` chose for its best search
    (``chosen``): a best weight of 0 means no second pass (``rescore`` None)."""
    config = chosen.config if chosen.config.weight > 0 else None
    return dataclasses.replace(tuning, dev_wer=chosen.wer, dev_cer=chosen.cer, rescore=config, rescore_grid=chosen.grid, first_pass_wer=tuning.dev_wer)


@dataclass
class RescoringChoice:
    config: RescoreConfig  # the partner at the chosen weight (0: the first pass alone reads best)
    wer: float  # percent, at that weight
    cer: float
    grid: list[dict]  # {"weight", "wer", "cer"} for every weight tried


def choose_rescoring(
    model: SpeechModel,
    utterances: Sequence[Utterance],
    search: BeamSearchConfig,
    partner: str | os.PathLike,
    weights: Sequence[float] = RESCORE_WEIGHTS,
    nbest: int = RescoreConfig.nbest,
    log=None,
) -> RescoringChoice:
    """The weight of ``partner``'s log-likelihood that reads ``utterances`` best (lowest WER,
    then CER; ties to the smaller weight) when it re-ranks the n best of ``search``. Each
    utterance is decoded once with ``nbest`` hypotheses, then re-ranked at every weight."""
    rescorer = Rescorer(RescoreConfig(str(partner), nbest=nbest), model.tokenizer)
    beam = BeamSearch(search, model.tokenizer)
    beam = beam.with_config(dataclasses.replace(beam.config, nbest=max(nbest, beam.config.nbest)))
    waves = load_waves(utterances)
    hyps = [decode(model, lp, beam) for lp in emissions_in_order(model, waves)]
    partner_of = rescorer.partner_log_probs(waves)
    references = [u.text for u in utterances]
    grid, best = [], None
    for weight in sorted(weights):
        choose = rescorer.reweighted(weight).choose
        texts = [choose(h, partner_of[i]).text if i in partner_of else h.text for i, h in enumerate(hyps)]
        wer, cer = error_rates(references, texts)
        grid.append({"weight": weight, "wer": round(wer, 2), "cer": round(cer, 2)})
        if best is None or (wer, cer) < best[0]:
            best = ((wer, cer), weight)
        if log:
            print(f"rescoring by {Path(str(partner)).name} at weight {weight:g}: WER {wer:.2f}% CER {cer:.2f}%", file=log, flush=True)
    (wer, cer), weight = best
    return RescoringChoice(dataclasses.replace(rescorer.config, weight=weight), wer, cer, grid)


def settings_relative_to(config: BeamSearchConfig, path: str | os.PathLike) -> dict:
    """``config`` as a settings file at ``path`` holds it: LM and lexicon paths relative to it."""
    settings = config.to_dict()
    for key in ("lm", "lexicon"):
        if settings[key]:
            settings[key] = os.path.relpath(Path(settings[key]).resolve(), Path(path).parent.resolve())
    return settings


def write_tuning(path: str | os.PathLike, tuning: Tuning, data: str) -> None:
    """Write the best settings as a ``.lm.json`` file (LM and lexicon paths relative to it)."""
    path = Path(path)
    settings = settings_relative_to(tuning.best, path)
    settings["tuned"] = {
        "data": data,
        "utterances": tuning.n_utterances,
        "dev_wer": round(tuning.dev_wer, 2),
        "dev_cer": round(tuning.dev_cer, 2),
        "greedy_dev_wer": round(tuning.greedy_wer, 2),
    }
    if tuning.first_pass_wer is not None:
        settings["tuned"]["first_pass_dev_wer"] = round(tuning.first_pass_wer, 2)
    if tuning.rescore is not None:
        rescore = tuning.rescore.to_dict()
        model = Path(rescore["model"])
        rescore["model"] = os.path.relpath(model.resolve(), path.parent.resolve()) if model.is_file() else str(model)
        settings["rescore"] = rescore
    write_atomic(path, json.dumps(settings, indent=2) + "\n")


@dataclass
class LMStep:
    """What :func:`build_and_tune_lm` made: the LMs built, the settings kept, the search."""

    summaries: dict[str, dict]  # ARPA path -> build_lm_files' summary, one per order
    orders: list[int]
    lexicon: Path
    tuning: Tuning
    search: BeamSearch  # the best settings, ready to decode with

    def info(self) -> dict:
        """The figures a recipe reports about its LM step."""
        best = self.tuning.best
        return {
            "lm": self.summaries[best.lm],
            "arpa": Path(best.lm).name,  # the chosen LM's and the lexicon's file names in the LM folder
            "lexicon": self.lexicon.name,
            "orders_tried": self.orders,
            "lm_weight": best.lm_weight,
            "word_score": best.word_score,
            "beam_size": best.beam_size,
            "beam_sizes_tried": sorted({g["beam_size"] for g in self.tuning.grid}),
            "greedy_dev_wer": round(self.tuning.greedy_wer, 2),
            "rescore": self.tuning.rescore.to_dict() if self.tuning.rescore else None,
            "rescore_grid": self.tuning.rescore_grid,
            "first_pass_dev_wer": self.tuning.first_pass_wer,
        }


def build_and_tune_lm(
    model_path: str | os.PathLike,
    texts: Sequence[str],
    dev: Sequence[Utterance],
    out_dir: str | os.PathLike,
    orders: Sequence[int],
    beam_sizes: Sequence[int] = TUNED_BEAM_SIZES,
    prefix: str = "lm",
    data: str = "dev set",
    log=None,
    rescore_model: str | os.PathLike | None = None,
) -> LMStep:
    """A recipe's LM step: word LMs of each order (``out_dir/PREFIX-Ngram.arpa``) and a lexicon
    (``out_dir/PREFIX.lexicon.txt``) from the training transcripts ``texts`` (never test
    text), the beam search tuned on ``dev`` for each order and beam size, and the best (lowest
    dev WER, then CER; ties to the smaller beam, then the lower order) written beside the model
    (``MODEL.lm.json``). With ``rescore_model``, a second pass by that model is tuned on
    ``dev`` too (:func:`choose_rescoring`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text_file = out_dir / "train.txt"
    write_atomic(text_file, "".join(text + "\n" for text in texts))
    lexicon = out_dir / f"{prefix}.lexicon.txt"
    summaries = {}
    for order in sorted(orders):
        arpa = out_dir / f"{prefix}-{order}gram.arpa"
        summaries[str(arpa)] = build_lm_files([text_file], arpa, lexicon, order)
    model = load_model(model_path)
    tuning = tune(model, dev, search_configs(list(summaries), str(lexicon), beam_sizes), log=log)
    if rescore_model is not None:
        tuning = with_rescoring(tuning, choose_rescoring(model, dev, tuning.best, rescore_model, log=log))
    write_tuning(tuning_path(model_path), tuning, data)
    search = BeamSearch(tuning.best, model.tokenizer)
    return LMStep(summaries, sorted(orders), lexicon, tuning, search.with_rescorer(Rescorer(tuning.rescore, model.tokenizer)) if tuning.rescore else search)
