"""The training loop: CTC on length-bucketed batches, single process or DDP (torchrun).

A run writes into its output folder:

- ``checkpoint.pt``: everything needed to resume, written atomically after every epoch (and,
  with ``checkpoint_steps``, within epochs);
- ``best.pt``: the model file (see :func:`speechrnn.model.save_model`) with the lowest dev WER;
- ``log.csv`` and ``curve.png``: loss and dev WER/CER per epoch against wall time.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from .audio import AudioError, load_audio
from .data import BABBLE_TALKERS, NOISE_TYPES, AugmentConfig, DiskWaves, Utterance, concatenation_groups, length_batches, load_waves, mask_frequencies, mask_times, pad_waves, perturb_wave, vtlp_filterbank
from .evaluate import error_rates
from .features import CMVNAccumulator, Frontend, FrontendConfig, num_frames, speech_level_db
from .files import replace_atomically
from .model import ModelConfig, SpeechModel, atomic_torch_save, load_model, resolve_model_path, save_model, valid_frames, widened_lookahead, widened_units
from .transcribe import recognize


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    batch_size: int = 16  # utterances per batch (per process under DDP)
    lr: float = 2.5e-3  # peak learning rate
    weight_decay: float = 0.01  # AdamW
    warmup_steps: int = 300  # linear warm-up, then cosine decay to final_lr_ratio * lr
    final_lr_ratio: float = 0.02
    grad_clip: float = 5.0  # gradient-norm clipping (RNNs explode through time without it)
    seed: int = 0
    threads: int = 2  # CPU threads per process
    average_epochs: int = 0  # with keep="last": the model file averages the weights of the last N epochs
    # Intermediate CTC (a regulariser): the loss is (1 - w) * CTC(output) + w * CTC(the shared
    # head on the output of the first inter_ctc_layer RNN layers); GRU models only. 0: off.
    inter_ctc_weight: float = 0.0
    inter_ctc_layer: int = 0
    # Distillation (needs a teacher model, see train()): the loss is (1 - w) * the CTC loss +
    # w * the mean per-frame KL divergence from the teacher's output distributions, delayed by
    # distill_shift output frames (a streaming student emits its characters later than a
    # bidirectional teacher: 3 frames, median, for the bundled pair on AN4 dev). 0: off.
    distill_weight: float = 0.0
    distill_shift: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"training needs at least 1 epoch, 1 utterance a batch and 1 thread, got epochs {self.epochs}, batch size {self.batch_size}, threads {self.threads}")
        if not self.lr > 0 or self.warmup_steps < 0 or not self.grad_clip > 0 or self.weight_decay < 0 or not 0 <= self.final_lr_ratio <= 1:
            raise ValueError(
                f"training needs a learning rate and gradient clip above 0, warm-up steps and weight decay of 0 or more and a final learning-rate ratio in 0..1, "
                f"got lr {self.lr}, grad_clip {self.grad_clip}, warmup_steps {self.warmup_steps}, weight_decay {self.weight_decay}, final_lr_ratio {self.final_lr_ratio}"
            )


# Training audio up to this many hours is read into memory before training (about 0.2 GB an
# hour as float32); a larger corpus is read from its files batch by batch (DiskWaves).
PRELOAD_HOURS = 10.0
# The global feature statistics come from at most this many training utterances (a seeded
# random subset beyond it): hours of speech estimate a mean and variance per feature well, and a
# large corpus would otherwise be read once more, whole, just for them.
CMVN_UTTERANCES = 2000


def statistics_subset(n_utterances: int, seed: int) -> list[int]:
    """Indices of the training utterances that input statistics come from: all of them, or a
    seeded random ``CMVN_UTTERANCES`` of them."""
    if n_utterances <= CMVN_UTTERANCES:
        return list(range(n_utterances))
    return sorted(random.Random(seed).sample(range(n_utterances), CMVN_UTTERANCES))


def compute_cmvn(model: SpeechModel, waves: Sequence[torch.Tensor], seed: int = 0) -> None:
    """Set the frontend's global mean/variance from un-augmented training audio (see
    :func:`statistics_subset`), and with a running channel mean in the frontend its prior too:
    the mean log-mel frame of the same audio, read in the same single pass."""
    frontend = model.frontend
    subset = statistics_subset(len(waves), seed)
    if frontend.config.running_cmn_frames:
        moments = _RunningMeanMoments(frontend)
        for log_mel, levels in _statistics_log_mel(frontend, waves, subset):
            moments.update(log_mel, levels)
        prior, mean, std = moments.stats()
        frontend.cmn_prior.copy_(prior)
        frontend.set_cmvn(mean, std)
        return
    acc = CMVNAccumulator(frontend.config.n_features)
    for log_mel, levels in _statistics_log_mel(frontend, waves, subset):
        log_mel = frontend.subtract_channel_mean(log_mel, torch.tensor([log_mel.shape[1]]), levels)
        acc.update(frontend.transform(log_mel)[0])
    frontend.set_cmvn(*acc.stats())


class _RunningMeanMoments:
    """Sums from which one pass over the audio gives both a running channel mean's prior and
    the global mean/variance of the features that mean leaves, though each feature depends on
    the prior, which is known only at the end.

    With ``n0 = running_cmn_frames``, frame ``t`` of an utterance is left as
    ``z_t - c_t * prior``, where ``z_t`` is the frame less the running mean a zero prior gives
    and ``c_t = n0 / (n0 + t + 1)`` (``t + 1`` the frames that entered the mean, fewer with
    its gate: :meth:`Frontend.running_channel_mean`); the feature
    transform is linear, so the feature is ``g_t - c_t * q`` with ``g_t = transform(z_t)`` and
    ``q = transform(prior)``. Its sum and sum of squares follow from the sums of ``g``, ``g**2``,
    ``c * g``, ``c`` and ``c**2`` (float64) once ``prior``, the mean log-mel frame, is known
    (with the gate, the mean of the frames it lets in: the speech's, which the mean then holds)."""

    def __init__(self, frontend: Frontend):
        self.frontend = frontend
        self.log_mel = CMVNAccumulator(frontend.config.n_mels)
        self.g = CMVNAccumulator(frontend.config.n_features)  # (its sums of g and g**2)
        self.c_g = torch.zeros(frontend.config.n_features, dtype=torch.float64)
        self.c = self.c_sq = 0.0

    def update(self, log_mel: torch.Tensor, levels: torch.Tensor | None = None) -> None:
        """Add one utterance's ``(1, T, n_mels)`` log-mel frames (before any mean is removed;
        ``levels``: the gate's, :meth:`Frontend.log_mel_and_levels`)."""
        frontend = self.frontend
        n0 = frontend.config.running_cmn_frames
        zero = torch.zeros(frontend.config.n_mels, dtype=torch.float64)
        sums, count, entered, _ = frontend.running_mean_sums(log_mel, None, levels, prior=zero)
        denominator = n0 + count[0]
        g = frontend.transform(log_mel[0] - (sums[0] / denominator[:, None]).to(log_mel.dtype)).double()
        c = n0 / denominator
        self.log_mel.update(log_mel[0, entered[0]])
        self.g.update(g)
        self.c_g += (c[:, None] * g).sum(0)
        self.c += float(c.sum())
        self.c_sq += float((c**2).sum())

    def stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prior (mean log-mel frame, of the frames the gate lets in), and the features'
        mean and standard deviation."""
        config = self.frontend.config
        if self.log_mel.count == 0 and config.running_cmn_gate_db and self.g.count:
            raise ValueError(
                f"running_cmn_gate_db={config.running_cmn_gate_db:g}: no frame of the training audio came within that many dB of the "
                f"loudest before it (level tracking's start level {config.level_start_db} dB counting as one): lower level_start_db or widen the gate"
            )
        prior = self.log_mel.stats()[0]
        q = self.frontend.transform(prior).double()
        count = self.g.count
        mean = (self.g.total - q * self.c) / count
        var = torch.clamp((self.g.total_sq - 2 * q * self.c_g + q**2 * self.c_sq) / count - mean**2, min=1e-10)
        return prior, mean.float(), var.sqrt().float()


def _statistics_log_mel(frontend: Frontend, waves: Sequence[torch.Tensor], subset: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(1, T, n_mels)`` log-mel frames of each of ``waves[subset]`` that can be read (those
    that cannot are named on stderr), with their levels where a gated running mean needs them
    (:meth:`Frontend.log_mel_and_levels`)."""
    with torch.no_grad():
        for i in subset:
            try:
                wave = waves[i]
            except AudioError as error:  # from disk: training leaves it out too
                print(f"warning: left out of the feature statistics: {error}", file=sys.stderr, flush=True)
                continue
            yield frontend.log_mel_and_levels(wave[None])


def calibrate_level(model_path: str | os.PathLike, train_set: Sequence[Utterance], seed: int = 0) -> None:
    """Give a bidirectional model file whole-utterance level normalisation: inputs are scaled
    to the median speech level of the training speech (see :func:`statistics_subset`); training
    itself saw levels spread by the gain augmentation."""
    model = load_model(model_path)
    levels = []
    for utterance in (train_set[i] for i in statistics_subset(len(train_set), seed)):
        try:
            wave = torch.from_numpy(load_audio(utterance.audio))
        except AudioError as error:
            print(f"warning: left out of the level calibration: {error}", file=sys.stderr, flush=True)
            continue
        levels.append(float(speech_level_db(wave[None], torch.tensor([wave.shape[0]]), model.config.frontend)[0]))
    if not levels:
        raise ValueError(f"{model_path}: no readable training utterance to calibrate its input level on")
    level = round(statistics.median(levels), 1)
    calibrated = SpeechModel(dataclasses.replace(model.config, level_db=level))
    calibrated.load_state_dict(model.state_dict())
    # Training's dev figures were read without the level normalisation: kept under names that say so.
    metadata = {f"{k}_uncalibrated" if k in ("dev_wer", "dev_cer") else k: v for k, v in model.metadata.items()}
    save_model(model_path, calibrated, metadata={**metadata, "level_db_from": f"median of {len(levels)} training utterances"})
    print(f"level normalisation: inputs scaled to {level} dB FS speech level", file=sys.stderr)


def mix_into(model_path: str | os.PathLike, other: str | os.PathLike, weight: float) -> None:
    """Rewrite a model file with ``(1 - weight) * its weights + weight * other's`` (see
    :func:`_blend`), for the AN4 recipe's ``--clean-mix``: a little of the clean stage's model in
    the robust stage's. (Session 13, recipes/an4/RESULTS.md: for an offline model 10-20% of its
    clean stage read clean AN4 dev speech better than either end, at some cost in other
    conditions beyond 10%; for a streaming model the mixes only traded robustness for clean
    accuracy.)"""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixing weight must be in 0..1, got {weight}")
    mixed = _blend([model_path, other], [1.0 - weight, weight], {"mixed_with": str(other), "mix_weight": weight})
    save_model(model_path, mixed, metadata=mixed.metadata)


def average_models(sources: Sequence[str | os.PathLike], weights: Sequence[float] | None = None) -> SpeechModel:
    """The mean of several model files' weights (paths or bundled names; a "model soup"), for
    models of one lineage, e.g. training cycles started from one file, or a model and the one it
    was trained from (see :func:`_blend`). ``weights``, one a file, non-negative, scaled to sum to
    1, weigh the mean (equal by default). A plain mean of state dicts: torch's ``AveragedModel``
    averages the steps of one run in memory, not files."""
    if len(sources) < 2:
        raise ValueError("averaging needs two model files or more")
    if weights is None:
        weights = [1.0] * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} model files; give one a file")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    shares = [w / sum(weights) for w in weights]
    provenance = {"averaged_from": [str(source) for source in sources]}
    if len(set(shares)) > 1:
        provenance["average_weights"] = [round(share, 6) for share in shares]
    return _blend(sources, shares, provenance)


# The metadata a blend adds to say what it was made of (average_models, mix_into): the sources
# as named, their weights, and each source file's SHA-256, since a bundled name such as
# "streaming" names another file once a blend of it is bundled.
BLEND_PROVENANCE = ("averaged_from", "average_weights", "mixed_with", "mix_weight", "blended_sha256")
# Figures that describe one trained model and not a blend of several: a blend drops them.
_MODEL_FIGURES = ("dev_wer", "dev_cer", "dev_wer_uncalibrated", "dev_cer_uncalibrated", "an4_test_wer", "an4_test_cer", "epoch")


def _blend(sources: Sequence[str | os.PathLike], shares: Sequence[float], provenance: dict) -> SpeechModel:
    """One model whose floating-point tensors (weights, and buffers such as the CMVN statistics)
    are the ``shares``-weighted sum of the model files' tensors (shares summing to 1), for
    relatives of one model: the same model config but for ``level_db``, the first file's
    input-level calibration, which is kept (it is measured on training speech, not learnt).
    Integer tensors must agree. The first file's metadata is kept, less the figures that were its
    own, plus ``provenance`` and the files' SHA-256 digests."""
    # Each file read once: its bytes are loaded and hashed.
    files = [resolve_model_path(source).read_bytes() for source in sources]
    models = [load_model(source, data=data) for source, data in zip(sources, files)]
    first = models[0]
    for source, model in zip(sources[1:], models[1:]):
        if not model.config.matches_apart_from_level(first.config):
            raise ValueError(f"{source}: its model config differs from {sources[0]}'s; only relatives of one model blend")
    equal = len(set(shares)) == 1  # the plain mean, as soups were made before weights (same bits)

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(tensors).mean(dim=0) if equal else sum(share * tensor for share, tensor in zip(shares, tensors))

    states = [model.state_dict() for model in models]
    blended = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            blended[key] = combine([state[key] for state in states])
        elif all(torch.equal(state[key], value) for state in states[1:]):
            blended[key] = value
        else:
            raise ValueError(f"{key}: a non-floating-point tensor differs between the models; they cannot be blended")
    first.load_state_dict(blended)
    digests = [hashlib.sha256(data).hexdigest() for data in files]
    kept = {k: v for k, v in first.metadata.items() if k not in _MODEL_FIGURES and k not in BLEND_PROVENANCE}
    first.metadata = {**kept, **provenance, "blended_sha256": digests}
    return first


def augmented_batch(
    model: SpeechModel, waves: Sequence[torch.Tensor], augment: AugmentConfig | None, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturb, featurise and SpecAugment a batch: ``(B, T, F)`` features and ``(B,)`` lengths."""
    return batch_features(model, *perturbed_batch(waves, augment, rng), augment, rng)


def perturbed_batch(waves: Sequence[torch.Tensor], augment: AugmentConfig | None, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's waveforms after speed, level, noise and band perturbation, padded: ``(B, N)``
    samples and ``(B,)`` lengths."""
    if augment is None:
        return pad_waves(waves)
    # Babble's talkers are the batch's other recordings (as read, before their own perturbation).
    return pad_waves([perturb_wave(w, augment, rng, [*waves[:i], *waves[i + 1 :]]) for i, w in enumerate(waves)])


def batch_features(
    model: SpeechModel, padded: torch.Tensor, lens: torch.Tensor, augment: AugmentConfig | None, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model``'s features of a :func:`perturbed_batch`, frequency-warped (``augment.vtlp``) and
    SpecAugmented: ``(B, T, F)`` and ``(B,)``."""
    frontend = model.frontend
    device = frontend.cmvn_mean.device
    if augment is None:
        return model.features(padded.to(device), lens.to(device))
    feat_lens = num_frames(lens, frontend.config)
    banks = None
    if augment.vtlp is not None:
        fb = frontend.mel.mel_scale.fb
        banks = torch.stack([vtlp_filterbank(fb, rng.uniform(*augment.vtlp), frontend.config.sample_rate) for _ in range(padded.shape[0])])
    log_mel, levels = frontend.log_mel_and_levels(padded.to(device), banks)
    log_mel = frontend.subtract_channel_mean(log_mel, feat_lens, levels)
    rows = []
    for b in range(log_mel.shape[0]):
        masked = frontend.normalize(frontend.transform(mask_frequencies(log_mel[b], int(feat_lens[b]), augment, rng)))
        rows.append(mask_times(masked, int(feat_lens[b]), augment, rng))
    return torch.stack(rows), feat_lens.to(device)


class ArgumentAdder(Protocol):
    """What :func:`add_noise_options` and :func:`add_frontend_options` need of their ``parser``:
    an ``argparse`` parser or one of its argument groups (argparse's group class is private)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any: ...

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any: ...


def add_noise_options(parser: ArgumentAdder, stage: str = "") -> None:
    """Add the recipes' shared options for :class:`AugmentConfig`'s noise, telephone band,
    microphones, lead-ins and frequency warping (read back by :func:`noise_fields`); ``stage`` (e.g. ",
    robust stage") says in the help where the noise, the band and the microphones apply."""
    parser.add_argument("--noise-prob", type=float, default=AugmentConfig.noise_prob, help=f"share of utterances with noise added{stage} (default: %(default)s)")
    parser.add_argument(
        "--snr-db", type=float, nargs=2, default=list(AugmentConfig.snr_db), metavar=("LOW", "HIGH"),
        help="signal-to-noise ratios of that noise, drawn uniformly from LOW..HIGH dB (default: %(default)s)",
    )
    low, high = BABBLE_TALKERS
    parser.add_argument(
        "--noise-types", nargs="+", choices=NOISE_TYPES, default=list(AugmentConfig.noise_types),
        help=f"kinds of that noise, one drawn per noisy example: white, pink (1/f), brown (1/f^2), babble ({low}-{high} other utterances of the batch at once) or hum (mains hum: 50 or 60 Hz and its harmonics) (default: %(default)s)",
    )
    parser.add_argument("--narrowband-prob", type=float, default=AugmentConfig.narrowband_prob, help=f"share of utterances sent through 8 kHz{stage} (default: %(default)s)")
    parser.add_argument(
        "--eq-prob", type=float, default=AugmentConfig.eq_prob,
        help=f"share of utterances heard through a random microphone's frequency response{stage} (default: %(default)s)",
    )
    parser.add_argument("--eq-db", type=float, default=AugmentConfig.eq_db, help="largest gain of each of its peaking filters, in dB either way (default: %(default)s)")
    parser.add_argument(
        "--lead-in-prob", type=float, default=AugmentConfig.lead_in_prob,
        help="share of examples that start after up to --lead-in-max seconds of faint noise, in every stage (default: %(default)s)",
    )
    parser.add_argument("--lead-in-max", type=float, default=AugmentConfig.lead_in_max, help="longest lead-in, seconds (default: %(default)s)")
    parser.add_argument(
        "--vtlp", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
        help="vocal tract length perturbation: warp each example's frequency axis by a factor drawn from LOW..HIGH (e.g. 0.9 1.1), in every stage (default: off)",
    )


def noise_fields(args: argparse.Namespace) -> dict:
    """The :class:`AugmentConfig` fields of a recipe's :func:`add_noise_options`."""
    return {
        "noise_prob": args.noise_prob, "snr_db": tuple(args.snr_db), "noise_types": tuple(args.noise_types),
        "narrowband_prob": args.narrowband_prob, "vtlp": tuple(args.vtlp) if args.vtlp else None,
        "eq_prob": args.eq_prob, "eq_db": args.eq_db, "lead_in_prob": args.lead_in_prob, "lead_in_max": args.lead_in_max,
    }


def add_frontend_options(parser: ArgumentAdder) -> None:
    """Add the recipes' shared options for the frontend's log floor and channel mean
    normalisation (read back by :func:`frontend_fields`)."""
    parser.add_argument(
        "--log-offset", type=float, default=FrontendConfig.log_offset,
        help="the fixed floor added to the mel energies before the log (default: %(default)s); with level tracking a lower floor keeps far quieter input from sinking into it (recipes/an4/RESULTS.md, session 49)",
    )
    cmn = parser.add_mutually_exclusive_group()
    cmn.add_argument("--utterance-cmn", action="store_true", help="subtract each utterance's mean log-mel energies per channel in the frontend (offline models only)")
    cmn.add_argument(
        "--running-cmn", type=float, default=0.0, metavar="FRAMES",
        help="subtract a causal running mean of the log-mel energies per channel in the frontend (streaming models too), starting from the training speech's mean weighted as FRAMES frames (default: off)",
    )
    parser.add_argument(
        "--running-cmn-gate", type=float, default=0.0, metavar="DB",
        help="with --running-cmn and level tracking: only frames within DB dB of the loudest frame so far (level tracking's start level first) enter the running mean, and its prior is the mean of such frames: not the quiet before speech, however long, nor its pauses (default: off, every frame)",
    )


def frontend_fields(args: argparse.Namespace) -> dict:
    """The :class:`FrontendConfig` fields of a recipe's :func:`add_frontend_options`."""
    if args.utterance_cmn and getattr(args, "streaming", False):
        raise ValueError("--utterance-cmn subtracts a whole utterance's mean, which a stream does not have: it is for offline models (a streaming model can take --running-cmn FRAMES)")
    return {"log_offset": args.log_offset, "utterance_cmn": args.utterance_cmn, "running_cmn_frames": args.running_cmn, "running_cmn_gate_db": args.running_cmn_gate}


def inter_ctc_options(weight: float, layer: int | None, n_layers: int) -> dict:
    """The intermediate-CTC fields of a :class:`TrainConfig` for a recipe's options: below all
    but the last of ``n_layers`` RNN layers unless ``layer`` says; none (off) for weight 0."""
    if not weight:
        return {}
    return {"inter_ctc_weight": weight, "inter_ctc_layer": n_layers - 1 if layer is None else layer}


def teacher_log_probs(teacher: SpeechModel, padded: torch.Tensor, lens: torch.Tensor, shift: int) -> torch.Tensor:
    """A teacher model's ``(B, U, V)`` log-probabilities of a :func:`perturbed_batch`, read
    without SpecAugment (the teacher sees the input the student's masks hide), each row delayed
    by ``shift`` output frames: frame ``t`` holds the teacher's frame ``t - shift``, the first
    ``shift`` frames its frame 0."""
    device = teacher.frontend.cmvn_mean.device
    with torch.no_grad():
        log_probs, _ = teacher.eval()(*teacher.features(padded.to(device), lens.to(device)))
    if shift and log_probs.shape[1]:
        n = log_probs.shape[1]
        log_probs = torch.cat([log_probs[:, :1].expand(-1, shift, -1), log_probs[:, : max(0, n - shift)]], dim=1)[:, :n]
    return log_probs


def distillation_loss(log_probs: torch.Tensor, teacher: torch.Tensor, out_lens: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of ``KL(teacher || student)`` between ``(B, U, V)``
    log-probabilities."""
    valid = valid_frames(log_probs, out_lens)
    per_frame = F.kl_div(log_probs, teacher, reduction="none", log_target=True).sum(-1)
    return (per_frame * valid).sum() / valid.sum().clamp(min=1)


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor, blank: int) -> torch.Tensor:
    """Mean CTC loss of a ``(B, U, V)`` batch against concatenated ``targets``."""
    return F.ctc_loss(log_probs.transpose(0, 1), targets, out_lens.to(log_probs.device), target_lens, blank=blank, zero_infinity=True)


def batch_loss(
    network: torch.nn.Module, tokenizer, feats: torch.Tensor, feat_lens: torch.Tensor, texts: Sequence[str], config: TrainConfig, teacher: torch.Tensor | None = None
) -> torch.Tensor:
    """A training batch's loss: the CTC loss of ``network`` (a :class:`SpeechModel`, or its
    DDP wrapper) on ``(B, T, F)`` features against ``texts``, mixed with the intermediate CTC
    loss when ``config`` has one, and with the distillation loss from ``teacher``'s
    log-probabilities (:func:`teacher_log_probs`) when ``config`` has a distillation weight."""
    device = feats.device
    targets = [torch.tensor(tokenizer.encode(text)) for text in texts]
    target_lens = torch.tensor([len(t) for t in targets], device=device)
    targets = torch.cat(targets).to(device)
    if not config.inter_ctc_weight:
        log_probs, out_lens = network(feats, feat_lens)
        loss = ctc_loss(log_probs, out_lens, targets, target_lens, tokenizer.blank)
    else:
        log_probs, out_lens, inter_log_probs = network(feats, feat_lens, inter_layer=config.inter_ctc_layer)
        w = config.inter_ctc_weight
        loss = (1 - w) * ctc_loss(log_probs, out_lens, targets, target_lens, tokenizer.blank) + w * ctc_loss(inter_log_probs, out_lens, targets, target_lens, tokenizer.blank)
    if not config.distill_weight:
        return loss
    if teacher is None or teacher.shape != log_probs.shape:
        raise ValueError(f"distillation needs the teacher's log-probabilities in the student's shape {tuple(log_probs.shape)}, got {None if teacher is None else tuple(teacher.shape)}")
    w = config.distill_weight
    return (1 - w) * loss + w * distillation_loss(log_probs, teacher, out_lens)


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    return config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# The recipes' distillation defaults: the bundled streaming model's characters come a median 3
# output frames after the bundled offline model's on AN4 dev (scripts/spike_lag.py, session 30).
DISTILL_WEIGHT = 0.5
DISTILL_SHIFT = 3


def distill_options(teacher: object, weight: float, shift: int) -> dict:
    """The distillation fields of a :class:`TrainConfig` for a recipe's options: none (off)
    when ``teacher`` (a model name, file or model) is None."""
    return {"distill_weight": weight, "distill_shift": shift} if teacher is not None else {}


def load_teacher(teacher: str | os.PathLike | None, model_config: ModelConfig, config: TrainConfig, device: str | torch.device = "cpu") -> SpeechModel | None:
    """The distillation teacher (a model file or bundled name) for training a ``model_config``
    model under ``config``, or None without distillation; ValueError, naming the file, for a
    teacher without a distillation weight or the other way round, a weight outside 0..1, a
    negative shift, or a teacher whose output frames or vocabulary differ from the student's."""
    if (teacher is None) != (not config.distill_weight) or not 0 <= config.distill_weight < 1 or config.distill_shift < 0:
        raise ValueError(f"distillation needs a teacher model, 0 < distill_weight < 1 and distill_shift >= 0, got teacher {teacher}, weight {config.distill_weight}, shift {config.distill_shift}")
    if teacher is None:
        return None
    model = load_model(teacher, device)
    if model.config.frame_samples != model_config.frame_samples or model.config.vocab != model_config.vocab:
        raise ValueError(
            f"{model.source}: a teacher needs the student's output frames ({model_config.frame_samples} samples) and vocabulary; "
            f"it has {model.config.frame_samples}-sample frames and {len(model.config.vocab)} symbols"
        )
    return model


def held_checkpoint(exp: str | os.PathLike) -> Path | None:
    """A run's checkpoint or model file (``checkpoint.pt``, ``best.pt``) in an experiment
    folder or its stages' subfolders (the first by name), or None: a folder that holds one is
    a run to resume or evaluate, not to train over."""
    exp = Path(exp)
    held = [path for name in ("checkpoint.pt", "best.pt") for path in exp.rglob(name)] if exp.is_dir() else []
    return min(held, default=None)


def training_data_record(train_set: Sequence[Utterance]) -> dict:
    """What a checkpoint records of its training set, so that ``--resume`` with another can be
    refused: the number of utterances and a SHA-256 of each one's file name, transcript and
    duration (file names, not paths: the same corpus may be reached from another folder)."""
    digest = hashlib.sha256()
    for u in train_set:
        digest.update(f"{Path(u.audio).name}\t{u.text}\t{u.duration:.4f}\n".encode())
    return {"utterances": len(train_set), "sha256": digest.hexdigest()}


def _augment_record(augment: AugmentConfig | None) -> dict | None:
    """An augmentation config as a checkpoint holds it (lists, not tuples: what torch.load gives back either way)."""
    return None if augment is None else json.loads(json.dumps(asdict(augment)))


def _differences(saved: dict, given: dict, prefix: str = "") -> list[str]:
    """``"NAME SAVED in the checkpoint, GIVEN now"`` for each config field that differs (nested
    dicts' fields by dotted names)."""
    found = []
    for key in sorted(saved.keys() | given.keys()):
        a, b = saved.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key} {a!r} in the checkpoint, {b!r} now")
    return found


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def train(
    model_config: ModelConfig,
    train_set: Sequence[Utterance],
    dev_set: Sequence[Utterance],
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    augment: AugmentConfig | None = AugmentConfig(),
    resume: bool = False,
    metadata: dict | None = None,
    init_from: str | os.PathLike | None = None,
    keep: str = "best",
    preload: bool | None = None,
    checkpoint_steps: int = 0,
    teacher: str | os.PathLike | None = None,
    own_statistics: bool = False,
) -> Path:
    """Train a model and return the path of its model file, ``best.pt``.

    ``keep="best"`` writes the epoch with the lowest dev WER there; ``keep="last"`` the last
    epoch, for a fine-tuning stage whose aim the dev set does not measure (robustness to
    voices and recording conditions it does not hold), where picking by dev WER alone would
    throw the fine-tuning away.

    With ``resume`` and an existing ``checkpoint.pt``, training continues after the last
    finished epoch and reaches the same weights as an uninterrupted run. ``init_from`` (a model
    file or bundled model name with the same config) starts from its weights and CMVN
    statistics instead of from scratch: fine-tuning. With ``own_statistics`` the weights come
    from it but the input statistics (and a running mean's prior) are computed from
    ``train_set`` as a run from scratch computes them, for a start file whose frontend options
    changed since its statistics were taken (``scripts/set_frontend.py``: a gated running mean's
    prior is the mean of the frames its gate lets in, not of every frame).

    ``preload`` holds all training audio in memory (the default up to ``PRELOAD_HOURS`` of it,
    by the utterances' durations); otherwise each batch is read from its files while the batch
    before it trains, and an unreadable file is left out with a warning naming it. The dev set
    is always held in memory.

    ``checkpoint_steps`` (0: off) also writes ``checkpoint.pt`` every that many batches within
    an epoch, for corpora whose epochs take hours: ``resume`` then goes on from that batch with
    every process's random state as it was. On the CPU the weights are then those of an
    uninterrupted run, bit for bit; on a GPU the same batches and augmentation follow, but
    CUDA's CTC backward is not deterministic to begin with. Under DDP, resume with as many
    processes; across machines ``out_dir`` must be on a filesystem they share (rank 0 writes
    the checkpoint, every process reads it).

    ``teacher`` (a model file or bundled model name; with ``config.distill_weight``) is the
    model whose output distributions the student learns to match besides the CTC loss
    (distillation, see :class:`TrainConfig`): it reads each batch after the same perturbation,
    without SpecAugment, and must give frames of the same length and vocabulary.
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
    if config.inter_ctc_weight and not (0 < config.inter_ctc_weight < 1 and 0 < config.inter_ctc_layer < model_config.n_layers and model_config.rnn_type == "gru"):
        raise ValueError(f"inter_ctc_weight needs 0 < weight < 1 and a GRU with more than inter_ctc_layer layers, got weight {config.inter_ctc_weight}, layer {config.inter_ctc_layer}, {model_config.n_layers} x {model_config.rnn_type}")
    if checkpoint_steps < 0:
        raise ValueError(f"checkpoint_steps must be >= 0, got {checkpoint_steps}")
    if config.average_epochs and (keep != "last" or not 0 < config.average_epochs <= config.epochs):
        raise ValueError(f"average_epochs needs keep='last' and 1..epochs ({config.epochs}) epochs, got {config.average_epochs}")
    out_dir = Path(out_dir)
    rank, world, local_rank = _distributed()
    is_main = rank == 0
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL collectives (all_gather_object too) use the current device
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"

    if preload is None:
        preload = sum(u.duration for u in train_set) <= PRELOAD_HOURS * 3600
    train_waves = load_waves(train_set, progress=is_main) if preload else DiskWaves(train_set)
    dev_waves = load_waves(dev_set, progress=is_main)
    model = SpeechModel(model_config)
    teacher_model = load_teacher(teacher, model_config, config, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # Each process takes every world-th batch; the last few batches of an epoch's shuffled
    # order that do not fill a round of all processes are left out (a different few each epoch).
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size) // world
    if steps_per_epoch == 0:
        n_batches = math.ceil(len(train_set) / config.batch_size)
        raise ValueError(
            f"{len(train_set)} training utterances in batches of {config.batch_size} are {n_batches} batch{'es' * (n_batches != 1)} an epoch, "
            f"fewer than the {world} processes: lower the batch size or start fewer processes"
        )
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, config))

    data_record = training_data_record(train_set)
    start_epoch, best_wer, elapsed, history = 1, float("inf"), 0.0, []
    averaged = None
    partial = None  # where a mid-epoch checkpoint left its epoch
    resumed_states = None  # the checkpoint's optimizer, scheduler and average, loaded once the model is on its device
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved_model, saved_train = ModelConfig.from_dict(state["model_config"]), TrainConfig(**state["train_config"])
        changed = _differences(saved_model.to_dict(), model_config.to_dict()) + _differences(asdict(saved_train), asdict(config))
        if "augment" in state:  # (checkpoints of session 64 on record the augmentation and the data too)
            changed += _differences(state["augment"] or {}, _augment_record(augment) or {}, "augment.")
        if changed:
            raise ValueError(f"{checkpoint_path}: was written with other options ({'; '.join(changed)}); resume with the same options")
        if state.get("data", data_record) != data_record:
            raise ValueError(
                f"{checkpoint_path}: was written training on other data ({state['data']['utterances']} utterances, fingerprint {state['data']['sha256'][:12]}; "
                f"now {data_record['utterances']}, {data_record['sha256'][:12]}); resume with the same training set"
            )
        model.load_state_dict(state["model"])
        resumed_states = state
        start_epoch, best_wer, elapsed, history = state["epoch"] + 1, state["best_wer"], state["elapsed"], state["history"]
        partial = state.get("partial")
        if partial is not None and partial["world"] != world:
            raise ValueError(f"{checkpoint_path}: saved within epoch {partial['epoch']} by {partial['world']} processes; resume with as many (not {world})")
        if is_main:
            where = f" and {partial['position']} batches of epoch {partial['epoch']}" if partial else ""
            best = f"best dev WER {best_wer:.2f}%" if math.isfinite(best_wer) else "no epoch finished yet"
            print(f"resuming after epoch {state['epoch']}{where} ({best})", file=sys.stderr)
    elif init_from is not None:
        start = load_model(init_from)
        if (start.config.lookahead, start.config.input_lookahead) != (model_config.lookahead, model_config.input_lookahead):
            # The new future taps and input weights start at zero (a shorter look-ahead is refused below).
            start = widened_lookahead(start, max(start.config.lookahead, model_config.lookahead), max(start.config.input_lookahead, model_config.input_lookahead))
        if (start.config.n_hidden, start.config.n_proj) != (model_config.n_hidden, model_config.n_proj):
            # The added units' outgoing weights start at zero (fewer units are refused below).
            start = widened_units(start, max(start.config.n_hidden, model_config.n_hidden), max(start.config.n_proj, model_config.n_proj), config.seed)
        if not start.config.matches_apart_from_level(model_config):
            raise ValueError(f"{init_from}: its model config differs from the one to train; fine-tune with the same model options (or a longer look-ahead, or more units)")
        model.load_state_dict(start.state_dict())
        if own_statistics:
            compute_cmvn(model, train_waves, config.seed)
    else:
        compute_cmvn(model, train_waves, config.seed)

    def dev_error_rates(network: SpeechModel) -> tuple[float, float]:
        return error_rates(references, [h.text for h in recognize(network.eval(), dev_waves)])

    def save_kept(row: dict) -> None:
        """Write the model as it is now to ``best.pt``, with its epoch's log row; at the end
        of an averaging run, the average of the last epochs with its own dev figures."""
        info = {**(metadata or {}), **({"distilled_from": str(teacher)} if teacher is not None else {}), "epoch": row["epoch"], "dev_wer": row["dev_wer"], "dev_cer": row["dev_cer"]}
        if averaged is not None and row["epoch"] == config.epochs:
            dev_wer, dev_cer = dev_error_rates(averaged.module)
            info.update(averaged_epochs=config.average_epochs, dev_wer=round(dev_wer, 2), dev_cer=round(dev_cer, 2), last_epoch_dev_wer=row["dev_wer"])
            save_model(out_dir / "best.pt", averaged.module, metadata=info)
            print(f"average of the last {config.average_epochs} epochs: dev WER {dev_wer:.2f}% CER {dev_cer:.2f}%", file=sys.stderr, flush=True)
            return
        save_model(out_dir / "best.pt", model, metadata=info)

    model.to(device)
    if resumed_states is not None:
        # The optimizer puts its state where the parameters are when it loads it: on the GPU
        # only if the model is there first.
        optimizer.load_state_dict(resumed_states["optimizer"])
        scheduler.load_state_dict(resumed_states["scheduler"])
        if "averaged" in resumed_states:
            averaged = AveragedModel(model, use_buffers=True)
            averaged.load_state_dict(resumed_states["averaged"])
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    lengths = [w.shape[0] for w in train_waves] if preload else train_waves.lengths()
    references = [u.text for u in dev_set]

    def save_checkpoint(finished_epoch: int, within: dict | None = None) -> None:
        """``checkpoint.pt`` after ``finished_epoch`` epochs (and, ``within``, part of the next)."""
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": finished_epoch,
                "best_wer": best_wer,
                "elapsed": elapsed,
                "history": history,
                "model_config": model_config.to_dict(),
                "train_config": dataclasses.asdict(config),
                "augment": _augment_record(augment),
                "data": data_record,
                **({"averaged": averaged.state_dict()} if averaged is not None else {}),
                **({"partial": within} if within is not None else {}),
            },
            checkpoint_path,
        )

    def random_states(rng: random.Random) -> list[dict]:
        """Every process's random state (the augmentation's generator, torch's for dropout)."""
        mine = {"rng": rng.getstate(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            mine["cuda"] = torch.cuda.get_rng_state(device).cpu()
        if world == 1:
            return [mine]
        gathered = [None] * world
        dist.all_gather_object(gathered, mine)
        return gathered

    last_readable = None  # (groups, waves) of the last batch that could be read (DDP's stand-in)
    for epoch in range(start_epoch, config.epochs + 1):
        started = time.time()
        rng = random.Random(config.seed * 100003 + epoch)
        torch.manual_seed(config.seed * 100003 + epoch + rank)
        if augment is not None and augment.concat_prob > 0:
            # Joined examples: fewer and longer, in as many batches as an epoch of single
            # utterances (so the learning-rate schedule holds), grouped by their joined length.
            groups = concatenation_groups(len(train_set), augment, rng)
            batches = length_batches([sum(lengths[i] for i in g) for g in groups], math.ceil(len(groups) / max(1, steps_per_epoch * world)), rng)
            batches = [[groups[j] for j in batch] for batch in batches[: len(batches) // world * world][rank::world]]
        else:
            batches = [[[i] for i in batch] for batch in length_batches(lengths, config.batch_size, rng)[: steps_per_epoch * world][rank::world]]
        model.train()
        total_loss, n_batches, skip = 0.0, 0, 0
        if partial is not None:  # resuming within this epoch: its batches as far as the checkpoint are done
            skip, total_loss, n_batches = partial["position"], partial["total_loss"], partial["n_batches"]
            states = partial["random"][rank]
            rng.setstate(_as_tuples(states["rng"]))
            torch.set_rng_state(states["torch"])
            if "cuda" in states:
                torch.cuda.set_rng_state(states["cuda"], device)
            started -= partial["seconds"]
            partial = None
        # The bar counts trained batches: it does not wrap the batch list, which the
        # prefetching reader runs one batch ahead of.
        bar = tqdm(desc=f"epoch {epoch}/{config.epochs}", initial=skip, total=len(batches), disable=not is_main, leave=False, mininterval=1 if sys.stderr.isatty() else 60)
        for position, (groups, waves) in enumerate(_read_batches(batches[skip:], train_waves, prefetch=not preload), start=skip + 1):
            if not groups:  # every file of the batch unreadable
                if world == 1:
                    bar.update()
                    continue
                if last_readable is None:
                    raise RuntimeError(f"epoch {epoch}: no training example of a batch could be read (see the warnings above)")
                # The other processes wait for this one's gradients: it trains on its last
                # readable batch again rather than skip the step.
                groups, waves = last_readable
            last_readable = groups, waves
            padded, lens = perturbed_batch(waves, augment, rng)
            feats, feat_lens = batch_features(model, padded, lens, augment, rng)
            targets = None if teacher_model is None else teacher_log_probs(teacher_model, padded, lens, config.distill_shift)
            texts = [" ".join(train_set[i].text for i in g) for g in groups]
            loss = batch_loss(ddp_model, model.tokenizer, feats.to(device), feat_lens.to(device), texts, config, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
            n_batches += 1
            bar.set_postfix(loss=f"{total_loss / n_batches:.3f}", refresh=False)
            bar.update()
            if checkpoint_steps and position % checkpoint_steps == 0 and position < len(batches):
                states = random_states(rng)  # every process takes part
                if is_main:
                    within = {"epoch": epoch, "position": position, "n_batches": n_batches, "total_loss": total_loss, "seconds": time.time() - started, "world": world, "random": states}
                    save_checkpoint(epoch - 1, within)
        bar.close()
        if config.average_epochs and epoch > config.epochs - config.average_epochs:
            if averaged is None:
                averaged = AveragedModel(model, use_buffers=True)
            averaged.update_parameters(model)  # an equal-weight running mean of the epochs so far
        elapsed += time.time() - started

        if is_main:
            dev_wer, dev_cer = dev_error_rates(model)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": round(total_loss / max(1, n_batches), 4),
                    "dev_wer": round(dev_wer, 2),
                    "dev_cer": round(dev_cer, 2),
                    "lr": scheduler.get_last_lr()[0],
                    "wall_s": round(elapsed, 1),
                }
            )
            improved = dev_wer < best_wer
            best_wer = min(best_wer, dev_wer)
            if improved or keep == "last":
                save_kept(history[-1])
            save_checkpoint(epoch)
            write_log(out_dir, history)
            row = history[-1]
            print(
                f"epoch {epoch}: loss {row['train_loss']:.3f} dev WER {dev_wer:.2f}% CER {dev_cer:.2f}% "
                f"(best {best_wer:.2f}%) {elapsed / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )
        if world > 1:
            dist.barrier()
    if keep == "last" and is_main and start_epoch > config.epochs and history:
        # Resuming a finished run: the model file follows the rule asked for now.
        save_kept(history[-1])
    if world > 1:
        dist.destroy_process_group()
    return out_dir / "best.pt"


def _as_tuples(value):
    """A ``random.Random`` state as ``getstate`` gave it (tuples), from one saved and loaded."""
    return tuple(map(_as_tuples, value)) if isinstance(value, (list, tuple)) else value


def _read_batches(batches, train_waves, prefetch: bool):
    """``(groups, waveforms)`` of each batch, each group's utterances joined into one example.

    With ``prefetch`` (audio read from disk) the next batch is read in a thread while the
    caller trains on this one, and an example with an unreadable file is left out of its
    batch with a warning: one bad file in a corpus of hours must not end the run.
    """

    def read(groups: list[list[int]]) -> tuple[list[list[int]], list[torch.Tensor]]:
        kept, waves = [], []
        for group in groups:
            try:
                parts = [train_waves[i] for i in group]
            except AudioError as error:
                print(f"warning: training example left out: {error}", file=sys.stderr, flush=True)
                continue
            kept.append(group)
            waves.append(parts[0] if len(parts) == 1 else torch.cat(parts))
        return kept, waves

    if not prefetch:
        yield from map(read, batches)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for groups in batches:
            ahead = pool.submit(read, groups)
            if pending is not None:
                yield pending.result()
            pending = ahead
        if pending is not None:
            yield pending.result()


def write_log(out_dir: Path, history: list[dict]) -> None:
    """``log.csv`` and ``curve.png`` (loss and dev WER against wall time), both atomically."""
    def write_csv(f) -> None:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)

    replace_atomically(out_dir / "log.csv", write_csv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row["wall_s"] / 60 for row in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(minutes, [row["train_loss"] for row in history], color="tab:blue", label="train CTC loss")
    loss_axis.set_xlabel("training wall time (min)")
    loss_axis.set_ylabel("train CTC loss", color="tab:blue")
    wer_axis = loss_axis.twinx()
    wer_axis.plot(minutes, [row["dev_wer"] for row in history], color="tab:red", label="dev WER")
    wer_axis.set_ylabel("dev WER (%)", color="tab:red")
    wer_axis.set_ylim(0, min(100, max(row["dev_wer"] for row in history) * 1.05 + 1))
    fig.tight_layout()
    replace_atomically(out_dir / "curve.png", lambda f: fig.savefig(f, format="png"), binary=True)
    plt.close(fig)
