"""How much of a recording condition's loss is a fixed channel response, measured at test time.

A microphone, its placement and the channel after it multiply the speech's spectrum by a fixed
response: a constant offset per mel channel in the log-mel energies the models read. This bench
decodes each condition twice, as the model reads it and with each utterance's mean log-mel
energies per channel replaced by the training speech's (the model's global normalisation
statistics), which removes any fixed response, and prints WER (greedy) for both. Where the two
readings of a condition draw level with clean speech read the same way, its loss was the channel;
the gap between the two clean readings is what a model not trained on such features loses by the
substitution (an offline model trained with `--utterance-cmn` reads its features this way from
the start: recipes/an4/RESULTS.md, session 59).

A test-time analysis, not a decoding option: the substitution needs the whole utterance (no
streaming), and the models were trained without it.

Usage:
    .venv/bin/python scripts/bench_channel.py [--model offline streaming] [--split dev|test]
        [--conditions clean microphones ...] [--an4 ../shared/data/an4]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import types
from pathlib import Path

import torch

import bench_robustness  # (this folder: Python puts a script's own folder first on its path)
from speechrnn import machine
from speechrnn.audio import load_audio
from speechrnn.data import DEFAULT_AN4, an4_eval_split
from speechrnn.evaluate import error_rates
from speechrnn.features import utterance_mean
from speechrnn.model import SpeechModel, load_model
from speechrnn.transcribe import recognize


def substitute_utterance_mean(frontend, log_mel: torch.Tensor, feat_lens: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, T, n_mels)`` log-mel frames whose per-channel mean over each row's ``feat_lens``
    frames is replaced by the frontend's global mean (a log-mel frontend's normalisation mean);
    in place of :meth:`Frontend.subtract_channel_mean`, whose arguments it takes (``levels``,
    the running mean's gate, is not read: the models it reads have no running mean)."""
    mean, valid = utterance_mean(log_mel, feat_lens)
    return log_mel + (frontend.cmvn_mean - mean)[:, None, :] * valid[..., None]


def with_mean_substituted(model: SpeechModel) -> SpeechModel:
    """``model`` (changed in place) reading utterances with their mean log-mel energies replaced."""
    if model.config.frontend.kind != "logmel" or model.config.frontend.utterance_cmn or model.config.frontend.running_cmn_frames:
        raise SystemExit(f"{model.source}: the substitution needs a log-mel frontend without --utterance-cmn or --running-cmn")
    model.frontend.subtract_channel_mean = types.MethodType(substitute_utterance_mean, model.frontend)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--an4", default=str(DEFAULT_AN4))
    parser.add_argument("--model", nargs="+", default=["offline", "streaming"])
    parser.add_argument("--split", choices=["test", "dev"], default="dev")
    parser.add_argument("--conditions", nargs="+", default=["clean", "microphones"], metavar="PREFIX", help="conditions of scripts/bench_robustness.py (names starting so)")
    args = parser.parse_args()
    utterances = an4_eval_split(args.an4, args.split)
    texts = [u.text for u in utterances]
    wanted = lambda name: any(name.startswith(p) for p in args.conditions)
    with tempfile.TemporaryDirectory() as tmp:
        sets = bench_robustness.conditions([torch.from_numpy(load_audio(u.audio)) for u in utterances], texts, Path(tmp), wanted)
    report = {}
    for name in args.model:
        rows = {}
        for reading, model in (("as read", load_model(name)), ("mean substituted", with_mean_substituted(load_model(name)))):
            rows[reading] = {condition: round(error_rates(texts, [h.text for h in recognize(model, waves)])[0], 2) for condition, waves in sets.items()}
        report[name] = rows
    print(json.dumps({"split": args.split, "utterances": len(texts), "wer": report, "machine": machine.describe(), "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
