"""Train and evaluate a speechrnn model on CMU's AN4 corpus.

Usage:
    .venv/bin/python recipes/an4/run.py                       # offline (bidirectional) model
    .venv/bin/python recipes/an4/run.py --resume              # continue a killed run (a finished one: re-evaluate)
    .venv/bin/python recipes/an4/run.py --streaming --name streaming --hidden 384 --bundle
    .venv/bin/python recipes/an4/run.py --bundle              # also ship it as the 'offline' model
    .venv/bin/python recipes/an4/run.py --evaluate-only --bundle   # evaluate and ship a stopped run's best.pt
    torchrun --nproc_per_node 4 recipes/an4/run.py            # DDP on 4 GPUs (or CPU processes)

Steps: a speaker-disjoint dev split is carved from AN4 train; espeak-ng speaks about 30% of
the remaining training transcripts in random voices (so the model also copes with synthetic
speech); the model trains with speed perturbation, noise and SpecAugment, keeping the
checkpoint with the lowest dev WER; dev and test WER/CER go to recipes/an4/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from speechrnn.data import DEFAULT_AN4, AugmentConfig, Utterance, an4_utterances, read_manifest, speaker_split, write_manifest
from speechrnn.features import FrontendConfig
from speechrnn.model import BUNDLED_DIR, ModelConfig, load_model, save_model
from speechrnn.synth import random_voice, speak
from speechrnn.evaluate import evaluate
from speechrnn.train import TrainConfig, train

HERE = Path(__file__).resolve().parent


def synthesize(utterances: list[Utterance], out_dir: Path, share: float, seed: int) -> list[Utterance]:
    """Speak a random ``share`` of the transcripts with random espeak-ng voices (cached)."""
    manifest = out_dir / "synth.jsonl"
    if manifest.exists():
        return read_manifest(manifest)
    rng = random.Random(seed)
    chosen = [u for u in utterances if rng.random() < share]
    jobs = [(u, out_dir / "wav" / f"synth{i:04d}.wav", random_voice(rng)) for i, u in enumerate(chosen)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: speak(job[0].text, job[1], **job[2]), jobs))
    synth = [Utterance(str(path), u.text, 0.0, "espeak:" + voice["voice"]) for u, path, voice in jobs]
    import soundfile as sf

    for utt in synth:
        utt.duration = sf.info(utt.audio).duration
    write_manifest(manifest, synth)
    return synth


def evaluate_sets(model_path: Path, sets: dict[str, list[Utterance]]) -> dict[str, dict]:
    model = load_model(model_path)
    return {name: evaluate(model, utterances).summary() for name, utterances in sets.items()}


def write_results(path: Path, args, config: ModelConfig, train_config: TrainConfig, results: dict, exp: Path, n_params: int) -> None:
    state = torch.load(exp / "checkpoint.pt", map_location="cpu", weights_only=True)
    history = state["history"]
    best = min(history, key=lambda row: row["dev_wer"])
    kind = "bidirectional" if config.bidirectional else "unidirectional"
    lines = [
        f"## {args.name}: {config.n_layers}x{config.n_hidden} {kind} {config.rnn_type.upper()}, {n_params / 1e6:.2f} M parameters",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'recipes/an4/run.py'] + [shlex.quote(a) for a in sys.argv[1:]])}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}  ",
        f"Training: {len(history)} epochs, {state['elapsed'] / 60:.1f} min wall time; best dev WER at epoch {best['epoch']}  ",
        f"Model config: `{json.dumps({k: v for k, v in config.to_dict().items() if k not in ('vocab', 'frontend')})}`  ",
        f"Train config: `{json.dumps(train_config.__dict__)}`",
        "",
        "| set | utterances | WER % | CER % | decode RTF |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n']} | {r['wer']:.2f} | {r['cer']:.2f} | {r['rtf']:.4f} |")
    lines += ["", "Learning curve (dev, greedy):", "", "| epoch | wall min | train loss | dev WER % | dev CER % |", "|---|---|---|---|---|"]
    for row in history:
        if row["epoch"] % 5 == 0 or row["epoch"] == len(history) or row["epoch"] <= 2:
            lines.append(f"| {row['epoch']} | {row['wall_s'] / 60:.1f} | {row['train_loss']:.3f} | {row['dev_wer']:.2f} | {row['dev_cer']:.2f} |")
    section = "\n".join(lines) + "\n"
    # Keep the other models' sections of RESULTS.md.
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            sections[chunk.split(":", 1)[0]] = "## " + chunk.rstrip("\n") + "\n"
    sections[args.name] = section
    header = "# AN4 results\n\nWritten by `recipes/an4/run.py`; greedy CTC decoding. Dev is a speaker-disjoint split of AN4 train.\n\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + "\n".join(sections[k] for k in sorted(sections)))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--an4", default=str(DEFAULT_AN4), help="AN4 folder (default: %(default)s)")
    parser.add_argument("--name", default="offline", help="model name: its experiment folder and bundled name")
    parser.add_argument("--exp", default=None, help="experiment folder (default: recipes/an4/exp/NAME)")
    parser.add_argument("--streaming", action="store_true", help="unidirectional (streaming) model")
    parser.add_argument("--lookahead", type=int, default=None, help="look-ahead output frames (default: 2 streaming, 0 offline)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--frame-stack", type=int, default=ModelConfig.frame_stack)
    parser.add_argument("--n-mfcc", type=int, default=FrontendConfig.n_mfcc)
    parser.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    parser.add_argument("--no-level-augment", action="store_true", help="no random gain or added noise")
    parser.add_argument("--hidden", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synth-share", type=float, default=0.3, help="share of train transcripts also spoken by espeak-ng")
    parser.add_argument("--dev-speakers", type=int, default=6)
    parser.add_argument("--resume", action="store_true", help="continue from the experiment's checkpoint")
    parser.add_argument("--evaluate-only", action="store_true", help="no training: evaluate (and bundle) the experiment's best.pt")
    parser.add_argument("--bundle", action="store_true", help="copy the best model into speechrnn/models/NAME.pt (float16)")
    args = parser.parse_args()

    exp = Path(args.exp or HERE / "exp" / args.name)
    all_train = an4_utterances(args.an4, "train")
    test = an4_utterances(args.an4, "test")
    train_set, dev = speaker_split(all_train, args.dev_speakers, seed=0)
    synth = synthesize(train_set, HERE / "exp" / f"synth-{args.synth_share}", args.synth_share, seed=0) if args.synth_share > 0 else []
    print(f"train {len(train_set)} real + {len(synth)} synthetic, dev {len(dev)}, test {len(test)} utterances", file=sys.stderr)

    lookahead = args.lookahead if args.lookahead is not None else (2 if args.streaming else 0)
    config = ModelConfig(
        frontend=FrontendConfig(n_mfcc=args.n_mfcc),
        frame_stack=args.frame_stack,
        n_layers=args.layers,
        n_hidden=args.hidden,
        n_proj=args.hidden,
        dropout=args.dropout,
        bidirectional=not args.streaming,
        lookahead=lookahead,
    )
    augment = AugmentConfig(noise_prob=0.0, gain_db=(0.0, 0.0)) if args.no_level_augment else AugmentConfig()
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads, seed=args.seed)
    if args.evaluate_only:
        best = exp / "best.pt"
    else:
        best = train(config, train_set + synth, dev, exp, train_config, augment, resume=args.resume, metadata={"recipe": "an4", "name": args.name})
    if int(__import__("os").environ.get("RANK", "0")) != 0:
        return

    results = evaluate_sets(best, {"dev": dev, "test": test})
    model = load_model(best)
    if args.bundle:
        # Ship float16 weights when that leaves test WER and CER unchanged, else float32; the
        # figures stored with the file (and quoted in the README) are those of the shipped file.
        target = BUNDLED_DIR / f"{args.name}.pt"
        for half in (True, False):
            save_model(target, model, half=half, metadata=model.metadata)
            shipped = evaluate_sets(target, {"test": test})["test"]
            if (shipped["wer"], shipped["cer"]) == (results["test"]["wer"], results["test"]["cer"]):
                break
        info = {**model.metadata, "an4_test_wer": shipped["wer"], "an4_test_cer": shipped["cer"], "float16": half}
        save_model(target, model, half=half, metadata=info)
        results[f"test (bundled, float{16 if half else 32})"] = shipped
    write_results(HERE / "RESULTS.md", args, config, train_config, results, exp, model.n_params)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
