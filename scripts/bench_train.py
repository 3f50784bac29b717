"""Time training steps of the bundled models' architectures on AN4 training audio.

Usage:
    .venv/bin/python scripts/bench_train.py                       # all four variants, 2 threads
    .venv/bin/python scripts/bench_train.py --variant offline offline-conv0 --batches 20
    .venv/bin/python scripts/bench_train.py --variant offline streaming --gru speechrnn torch --rounds 2
    .venv/bin/python scripts/bench_train.py --variant streaming --teacher offline   # distillation's cost

Each variant is a bundled model's config (``offline``, ``streaming``) with its convolution
frontend as shipped, or with ``-conv0`` / ``-conv16`` swapped in, freshly initialised. A step
is what the recipe's training does per batch: speed perturbation, features and SpecAugment,
forward (with the intermediate CTC loss for a bidirectional model, as the offline recipe
trains), backward, gradient clipping and an AdamW update. Batches are 16 utterances of AN4
train in the recipe's length-sorted buckets, the same batches for every variant (single
utterances: the recipe also joins 2-3 in some examples, so its steps run longer). Prints one
JSON line per variant: the median seconds per step and the epoch time that implies for the
recipe's 869 training utterances, a figure of the machine as much as of the model (compare
variants within one run).

``--gru torch`` times the same steps with PyTorch's own GRU (``speechrnn.cpu_gru.torch_gru_layer``:
autograd through the call ``torch.nn.GRU`` makes) in place of speechrnn's training recurrence
(``speechrnn.cpu_gru.gru_layer``), through the model's ``own_cpu_gru`` switch; with both named, each round times them one after the other,
alternating which goes first, so a drifting machine slows both alike.

``--device cuda`` trains on a GPU as the recipes do there (perturbation on the CPU, features
and the model on the device; PyTorch's GRU, as ``own_cpu_gru`` applies to the CPU only). Each
line also splits the median step into its phases (``phase_s``: perturbation, features and
SpecAugment, then the model: forward (and the teacher's, with ``--teacher``), backward and
update), each timed to the device's completion.

``--teacher MODEL`` adds what the recipes' ``--distill-from MODEL`` adds to a step: the
teacher's forward pass over the perturbed batch and the distillation loss (weight 0.5, the
teacher's frames delayed by 3).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechrnn import machine  # noqa: E402
from speechrnn.audio import load_audio  # noqa: E402
from speechrnn.data import AN4_DEV_SPEAKERS, DEFAULT_AN4, AugmentConfig, an4_utterances, speaker_split  # noqa: E402
from speechrnn.model import SpeechModel, load_model  # noqa: E402
from speechrnn.train import DISTILL_SHIFT, DISTILL_WEIGHT, TrainConfig, batch_features, batch_loss, distill_options, inter_ctc_options, perturbed_batch, teacher_log_probs  # noqa: E402

VARIANTS = ("offline", "offline-conv0", "streaming", "streaming-conv16")
RECIPE_TRAIN_UTTERANCES = 869  # AN4 train less the recipe's dev speakers


def variant_model(name: str) -> SpeechModel:
    base, _, conv = name.partition("-conv")
    shipped = load_model(base)
    config = dataclasses.replace(shipped.config, conv_channels=int(conv)) if conv else shipped.config
    torch.manual_seed(0)
    model = SpeechModel(config)
    model.frontend.set_cmvn(shipped.frontend.cmvn_mean, shipped.frontend.cmvn_std)
    return model.train()


GRUS = ("speechrnn", "torch")


PHASES = ("perturb", "features", "model")


def time_steps(initial: SpeechModel, gru: str, waves, chosen, teacher: SpeechModel | None = None, device: str = "cpu") -> list[dict[str, float]]:
    """Seconds of each training step after the first, by phase (:data:`PHASES`), training a
    copy of ``initial`` on ``device`` with the ``gru`` recurrence (one of :data:`GRUS`), with
    distillation from ``teacher`` if given (the recipes' default weight and shift)."""
    model = copy.deepcopy(initial).to(device)
    if teacher is not None:
        teacher = teacher.to(device)

    def done() -> float:
        if device != "cpu":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    model.own_cpu_gru = gru == "speechrnn"
    # The offline recipe's intermediate CTC loss (weight 0.3 below the last layer); none for streaming.
    config = TrainConfig(
        **inter_ctc_options(0.3 if model.config.bidirectional else 0.0, None, model.config.n_layers),
        **distill_options(teacher, DISTILL_WEIGHT, DISTILL_SHIFT),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng, times = random.Random(0), []
    for i, (batch, utterances) in enumerate(zip(waves, chosen)):
        start = done()
        padded, lens = perturbed_batch(batch, AugmentConfig(), rng)
        perturbed = done()
        feats, feat_lens = batch_features(model, padded, lens, AugmentConfig(), rng)
        featured = done()
        targets = None if teacher is None else teacher_log_probs(teacher, padded, lens, config.distill_shift)
        loss = batch_loss(model, model.tokenizer, feats, feat_lens, [u.text for u in utterances], config, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if i:  # the first step warms up allocators and kernels
            times.append({"perturb": perturbed - start, "features": featured - perturbed, "model": done() - featured})
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--an4", type=Path, default=DEFAULT_AN4)
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS), help=f"models to time (default: {' '.join(VARIANTS)}; NAME-convC for C channels)")
    parser.add_argument("--batches", type=int, default=12, help="timed steps per variant, after one untimed (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gru", nargs="+", choices=GRUS, default=["speechrnn"], help="training recurrence(s) to time (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="times each variant and recurrence is timed, alternating (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="where features and the model run: cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--teacher", default=None, metavar="MODEL", help="also distil from this model in each step, as the recipes' --distill-from does (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        args.gru = ["torch"]  # off the CPU the model always trains through PyTorch's GRU
    teacher = load_model(args.teacher) if args.teacher else None

    train_set, _ = speaker_split(an4_utterances(args.an4, "train"), AN4_DEV_SPEAKERS, seed=0)
    # The recipe's buckets sort by length and batch neighbours; a random draw of them, fixed.
    ordered = sorted(train_set, key=lambda u: u.duration)
    batches = [ordered[i : i + args.batch_size] for i in range(0, len(ordered), args.batch_size)]
    chosen = random.Random(0).sample(batches, min(len(batches), args.batches + 1))
    waves = [[torch.from_numpy(load_audio(u.audio)) for u in batch] for batch in chosen]
    n_epoch_batches = -(-RECIPE_TRAIN_UTTERANCES // args.batch_size)

    for name in args.variant:
        initial, times = variant_model(name), {gru: [] for gru in args.gru}
        for round_ in range(args.rounds):
            for gru in args.gru if round_ % 2 == 0 else args.gru[::-1]:
                times[gru] += time_steps(initial, gru, waves, chosen, teacher, args.device)
        for gru, gru_times in times.items():
            step = statistics.median(sum(t.values()) for t in gru_times)
            print(json.dumps({
                "variant": name, "gru": gru, "teacher": args.teacher, "params_m": round(initial.n_params / 1e6, 2), "s_per_step": round(step, 3),
                "phase_s": {phase: round(statistics.median(t[phase] for t in gru_times), 4) for phase in PHASES},
                "epoch_min": round(step * n_epoch_batches / 60, 2), "steps": len(gru_times), "batch_size": args.batch_size,
                "threads": args.threads, "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(args.device), "machine": machine.describe(),
                "torch": torch.__version__,
            }), flush=True)


if __name__ == "__main__":
    main()
