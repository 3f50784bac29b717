"""Train and evaluate a speechrnn model on your own corpus, given as JSON-lines manifests.

A manifest has one utterance a line: ``{"audio": "path/to/file.flac", "text": "the words",
"duration": 2.3}`` (``duration`` optional, read from the file when missing; relative paths are
relative to the manifest). ``recipes/librispeech/prepare.py`` and
``recipes/commonvoice/prepare.py`` write them for those corpora.

Usage:
    .venv/bin/python recipes/manifest/run.py --train train.jsonl --dev dev.jsonl --test test.jsonl --exp exp/mine
    .venv/bin/python recipes/manifest/run.py ... --streaming                 # unidirectional, for `speechrnn live`
    .venv/bin/python recipes/manifest/run.py ... --resume                    # continue a killed run
    torchrun --nproc_per_node 4 recipes/manifest/run.py ...                 # DDP: GPUs, or CPU processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 recipes/manifest/run.py ...

One training stage with speed perturbation, SpecAugment, random gain, white noise and
telephone-band audio from the start. (The AN4 recipe trains a clean stage first because on
AN4's 869 utterances the robustness data slowed learning; on a large corpus that has not been
measured here.) The epoch with the lowest dev WER is kept as ``EXP/best.pt``, and a
bidirectional model is given the training speech's median level, to which it scales every
input. Every manifest line is checked before training starts (test manifests too), and a folder
that holds a run is only continued with ``--resume``. ``EXP/checkpoint.pt`` is written at every epoch's end and every 500 batches within one
(``--checkpoint-steps``), so ``--resume`` after a kill loses at most those batches and goes
on with the same batches and random draws (on the CPU to the weights of an uninterrupted run,
bit for bit). With several machines, EXP must be on a filesystem they share. Then word LMs are built from the training transcripts and
tuned on dev (at most 500 of its utterances, ``--lm-tune-utterances``; ``EXP/best.lm.json`` beside the model), and dev and every test manifest are
scored with and without the LM into ``EXP/RESULTS.md``.

Use the model: ``speechrnn transcribe --model EXP/best.pt talk.wav`` (with its tuned LM).

Training audio up to 10 hours is held in memory, more is read from disk batch by batch (a
thread reads the next batch while one trains); on a GPU the batches run there. Pick
``--threads`` for the CPU threads each process may use.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
from collections import Counter
from pathlib import Path

import torch

from speechrnn import machine
from speechrnn.audio import MIN_DURATION
from speechrnn.data import AugmentConfig, Utterance, read_manifest
from speechrnn.evaluate import evaluate
from speechrnn.features import FrontendConfig
from speechrnn.lm import highest_order
from speechrnn.model import ModelConfig, load_model
from speechrnn.files import write_atomic
from speechrnn.train import DISTILL_SHIFT, DISTILL_WEIGHT, TrainConfig, add_frontend_options, add_noise_options, calibrate_level, distill_options, frontend_fields, held_checkpoint, inter_ctc_options, load_teacher, noise_fields, train
from speechrnn.tuning import TUNED_BEAM_SIZES, build_and_tune_lm


def read_set(paths: list[str], max_duration: float | None = None) -> list[Utterance]:
    """The utterances of manifests; those with no text left after normalisation, shorter than
    the shortest audio speechrnn reads (0.25 s) or longer than ``max_duration`` seconds are
    left out (counted on stderr by reason)."""
    def left_out(u: Utterance) -> str | None:
        if not u.text:
            return "empty transcript"
        if u.duration < MIN_DURATION:
            return f"under {MIN_DURATION} s"
        return f"over {max_duration:g} s" if max_duration is not None and u.duration > max_duration else None

    utterances = [u for path in paths for u in read_manifest(path)]
    why = [left_out(u) for u in utterances]
    reasons = Counter(reason for reason in why if reason)
    kept = [u for u, reason in zip(utterances, why) if reason is None]
    if reasons:
        print(f"{', '.join(paths)}: {sum(reasons.values())} of {len(utterances)} utterances left out ({', '.join(f'{n} {why}' for why, n in reasons.items())})", file=sys.stderr)
    if not kept:
        raise ValueError(f"{', '.join(paths)}: no usable utterances")
    return kept


def result_name(path: str, paths: list[str]) -> str:
    """A test manifest's name in the results: its file stem, or its path where the stem is
    "dev" or another test manifest has it too."""
    stem = Path(path).stem
    return path if stem == "dev" or sum(Path(p).stem == stem for p in paths) > 1 else stem


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--train", nargs="+", required=True, help="training manifest(s)")
    data.add_argument("--dev", nargs="+", required=True, help="dev manifest(s): model selection and LM tuning")
    data.add_argument("--test", nargs="*", default=[], help="test manifests, each reported on its own")
    data.add_argument("--exp", required=True, help="experiment folder: checkpoints, model, LM, RESULTS.md")
    data.add_argument("--max-duration", type=float, default=30.0, help="leave out training utterances longer than this, in seconds (default: %(default)s)")
    model = parser.add_argument_group("model")
    model.add_argument("--streaming", action="store_true", help="unidirectional model with look-ahead and causal level tracking (for `speechrnn live`)")
    model.add_argument("--layers", type=int, default=3)
    model.add_argument("--hidden", type=int, default=320, help="RNN units per direction (default: %(default)s)")
    model.add_argument("--rnn-type", choices=("gru", "lstm"), default="gru")
    model.add_argument("--conv-channels", type=int, default=0, help="a 2-D convolution frontend of two 3x3 layers with this many channels, causal in a streaming model (default: %(default)s, none)")
    model.add_argument("--features", choices=("mfcc", "logmel"), default="logmel", help="frontend output (default: %(default)s)")
    model.add_argument("--frame-stack", type=int, default=2, help="frames stacked per RNN step (default: %(default)s, 20 ms steps)")
    model.add_argument("--dropout", type=float, default=None, help="dropout between RNN layers (default: 0.25, streaming 0.15)")
    model.add_argument("--lookahead", type=int, default=None, help="look-ahead output frames of a streaming model, 20 ms each (default: 4)")
    model.add_argument(
        "--level-start-db", type=float, default=None,
        help="a streaming model's level tracking starts from this level, in dB of a frame's total mel power (recipes/an4 uses 24, AN4 train's median peak; default: off, the first frame starts it)",
    )
    model.add_argument(
        "--level-start-lead-db", type=float, default=None,
        help="with --level-start-db: start at most this many dB above the first frame's level (default: no bound)",
    )
    add_frontend_options(model)
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=30)
    training.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="utterances per batch and process (default: %(default)s)")
    training.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    training.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    training.add_argument("--threads", type=int, default=TrainConfig.threads, help="CPU threads per process (default: %(default)s)")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--resume", action="store_true", help="continue from the experiment's checkpoint")
    training.add_argument("--checkpoint-steps", type=int, default=500, help="also checkpoint every this many batches within an epoch, 0: at epoch ends only (default: %(default)s)")
    training.add_argument("--init-from", default=None, help="start from this model file's weights (fine-tuning; same model options, or a larger --hidden: the weights it adds start at zero)")
    training.add_argument("--own-statistics", action="store_true", help="with --init-from: compute the input statistics (and a running mean's prior) from the training speech as a run from scratch does, not keep the start file's")
    add_noise_options(training)
    training.add_argument("--gain-db", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help="random gain range in dB (default: -10 6, streaming -30 15)")
    training.add_argument("--concat-prob", type=float, default=0.0, help="share of examples that join 2-3 utterances (default: %(default)s)")
    training.add_argument("--inter-ctc-weight", type=float, default=0.0, help="weight of an intermediate CTC loss on the lower RNN layers' output (default: %(default)s, off)")
    training.add_argument("--inter-ctc-layer", type=int, default=None, help="RNN layers below the intermediate CTC loss (default: all but the last)")
    training.add_argument("--distill-from", default=None, metavar="MODEL", help="a teacher model (file or bundled name) whose output distributions the model also learns to match (default: none)")
    training.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT, help="with --distill-from: the loss is (1 - W) * CTC + W * the per-frame KL divergence from the teacher (default: %(default)s)")
    training.add_argument("--distill-shift", type=int, default=DISTILL_SHIFT, help="with --distill-from: the teacher's frames are delayed by this many output frames (default: %(default)s, as measured for AN4's streaming and offline models)")
    lm = parser.add_argument_group("language model")
    lm.add_argument("--lm-order", type=int, nargs="+", default=[3], help="n-gram orders to build from the training transcripts and tune on dev, the best kept (default: %(default)s; 0: no LM)")
    lm.add_argument("--beam-size", type=int, nargs="+", default=list(TUNED_BEAM_SIZES), help="beam sizes to tune (default: %(default)s)")
    lm.add_argument("--lm-tune-utterances", type=int, default=500, help="tune the LM on at most this many dev utterances, a seeded random subset (default: %(default)s)")
    return parser


def model_config(args: argparse.Namespace) -> ModelConfig:
    streaming = args.streaming
    return ModelConfig(
        frontend=FrontendConfig(
            kind=args.features,
            level_decay_db=10.0 if streaming else 0.0,
            level_start_db=args.level_start_db if streaming else None,
            level_start_lead_db=args.level_start_lead_db if streaming else None,
            **frontend_fields(args),
        ),
        frame_stack=args.frame_stack,
        n_layers=args.layers,
        n_hidden=args.hidden,
        n_proj=args.hidden,
        rnn_type=args.rnn_type,
        dropout=args.dropout if args.dropout is not None else (0.15 if streaming else 0.25),
        io_dropout=0.0,
        bidirectional=not streaming,
        lookahead=(args.lookahead if args.lookahead is not None else 4) if streaming else 0,
        conv_channels=args.conv_channels,
    )


def write_results(exp: Path, args: argparse.Namespace, config: ModelConfig, n_train: int, results: dict, lm_info: dict | None) -> None:
    state = torch.load(exp / "checkpoint.pt", map_location="cpu", weights_only=True)
    history = state["history"]
    best = min(history, key=lambda row: row["dev_wer"])
    lines = [
        f"# {exp.name}: {config.n_layers}x{config.n_hidden} {'bidirectional' if config.bidirectional else 'unidirectional'} {config.rnn_type.upper()}",
        "",
        f"Command: `{(exp / 'command.txt').read_text().strip()}`  ",
        f"Machine: {machine.describe()}, torch {torch.__version__}, {'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}  ",
        f"Training: {len(history)} epochs on {n_train} utterances, {state['elapsed'] / 60:.1f} min; model: epoch {best['epoch']} (lowest dev WER)",
        "",
        "| set | utterances | WER % | CER % | decode RTF |",
        "|---|---|---|---|---|",
        *(f"| {name} | {r['n']} | {r['wer']:.2f} | {r['cer']:.2f} | {r['rtf']:.4f} |" for name, r in results.items()),
    ]
    if lm_info is not None:
        lines += [
            "",
            f"LM: {len(lm_info['lm']['ngrams'])}-gram from {lm_info['lm']['sentences']} training transcripts ({lm_info['lm']['vocabulary']} words), "
            f"lexicon-constrained beam of {lm_info['beam_size']}, LM weight {lm_info['lm_weight']:g}, word score {lm_info['word_score']:g} (tuned on dev).",
        ]
    lines += ["", "| epoch | wall min | train loss | dev WER % | dev CER % |", "|---|---|---|---|---|"]
    lines += [f"| {r['epoch']} | {r['wall_s'] / 60:.1f} | {r['train_loss']:.3f} | {r['dev_wer']:.2f} | {r['dev_cer']:.2f} |" for r in history]
    write_atomic(exp / "RESULTS.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    exp = Path(args.exp)
    if args.own_statistics and not args.init_from:
        parser.error("--own-statistics recomputes a start file's statistics: give --init-from (a run from scratch computes its own)")
    if not args.resume and (held := held_checkpoint(exp)):
        parser.error(f"{exp} holds a run already ({held}): --resume continues it; give another --exp for a new one")
    if any(order < 0 for order in args.lm_order) or min(args.beam_size) < 1 or args.lm_tune_utterances < 1:
        parser.error("--lm-order takes orders of 1 or more (or 0: no LM), --beam-size sizes of 1 or more, --lm-tune-utterances 1 or more")
    try:
        config = model_config(args)  # the model's own checks (e.g. --conv-channels must not be negative), before any data is read
        gain = tuple(args.gain_db) if args.gain_db else ((-30.0, 15.0) if args.streaming else AugmentConfig.gain_db)
        augment = AugmentConfig(  # and the augmentation's (e.g. --snr-db a range)
            **noise_fields(args), gain_db=gain, concat_prob=args.concat_prob,
        )
        if args.distill_from:  # the teacher's too
            load_teacher(args.distill_from, config, TrainConfig(**distill_options(args.distill_from, args.distill_weight, args.distill_shift)))
        train_set = read_set(args.train, args.max_duration)
        dev = read_set(args.dev)
        tests = {result_name(path, args.test): read_set([path]) for path in args.test}
        train_config = TrainConfig(  # and the training's (e.g. --batch-size at least 1)
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, threads=args.threads, seed=args.seed,
            **inter_ctc_options(args.inter_ctc_weight, args.inter_ctc_layer, args.layers),
            **distill_options(args.distill_from, args.distill_weight, args.distill_shift),
        )
        longest = highest_order(u.text.split() for u in train_set)
        if 0 not in args.lm_order and max(args.lm_order) > longest:
            raise ValueError(f"--lm-order {max(args.lm_order)}: the longest training transcript has {longest - 2} words, so at most {longest}-grams exist")
    except (OSError, ValueError) as error:  # a bad option or a missing or malformed manifest: no traceback, before any training
        parser.error(str(error))
    print(f"train {len(train_set)} utterances ({sum(u.duration for u in train_set) / 3600:.1f} h), dev {len(dev)}, test {', '.join(f'{k} {len(v)}' for k, v in tests.items()) or 'none'}", file=sys.stderr)

    if not (args.resume and (exp / "command.txt").exists()) and int(os.environ.get("RANK", "0")) == 0:
        exp.mkdir(parents=True, exist_ok=True)
        write_atomic(exp / "command.txt", " ".join([".venv/bin/python", "recipes/manifest/run.py"] + [shlex.quote(a) for a in sys.argv[1:]]) + "\n")
    try:
        run(args, exp, config, train_config, augment, train_set, dev, tests)
    except ValueError as error:  # an unreadable audio file (AudioError), or options that do not fit the checkpoint or the processes
        parser.exit(2, f"{parser.prog}: error: {error}\n(the checkpoints written so far are kept: mend the cause and rerun with --resume)\n")


def run(args: argparse.Namespace, exp: Path, config: ModelConfig, train_config: TrainConfig, augment: AugmentConfig, train_set: list[Utterance], dev: list[Utterance], tests: dict[str, list[Utterance]]) -> None:
    """Train, then (on the first process) evaluate, build and tune the LM, and write the results."""
    best = train(config, train_set, dev, exp, train_config, augment, resume=args.resume, metadata={"recipe": "manifest", "train": args.train}, init_from=args.init_from, own_statistics=args.own_statistics, checkpoint_steps=args.checkpoint_steps, teacher=args.distill_from)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    model = load_model(best)
    if config.bidirectional and model.config.level_db is None:
        calibrate_level(best, train_set, args.seed)
        model = load_model(best)
    sets = {"dev": dev, **tests}
    results = {name: evaluate(model, utterances).summary() for name, utterances in sets.items()}
    lm_info = None
    if 0 not in args.lm_order:
        # The grid decodes the tuning set once per setting (10 LM weights x 8 bonuses x each
        # beam size and order): a seeded subset keeps that affordable for a dev set of hours.
        tuning_set = dev if len(dev) <= args.lm_tune_utterances else random.Random(args.seed).sample(dev, args.lm_tune_utterances)
        data = f"{', '.join(args.dev)} ({len(tuning_set)} of {len(dev)} utterances)"
        step = build_and_tune_lm(best, [u.text for u in train_set], tuning_set, exp / "lm", args.lm_order, args.beam_size, data=data, log=sys.stderr)
        results.update({f"{name} + LM": evaluate(model, utterances, search=step.search).summary() for name, utterances in sets.items()})
        lm_info = step.info()
    write_results(exp, args, config, len(train_set), results, lm_info)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
