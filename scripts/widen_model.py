"""Widen a unidirectional model's look-ahead without changing what it reads.

Usage:
    .venv/bin/python scripts/widen_model.py MODEL OUT.pt --lookahead 8 --input-lookahead 4 [--half]

MODEL is a model file or a bundled model's name. The row convolution's added taps and the
projection's weights for added input frames start at zero (speechrnn.model.widened_lookahead),
so the copy emits what the model emits on every frame, only later: the start of a fine-tuning
run to a longer look-ahead (the recipe's --init-from does the same), or a model of that shape
to measure streaming costs with (recipes/an4/RESULTS.md, session 46's tentative-skip figures).
"""
from __future__ import annotations

import argparse

from speechrnn.model import load_model, save_model, widened_lookahead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model file or bundled model name to read")
    parser.add_argument("output", help="model file to write (atomically)")
    parser.add_argument("--lookahead", type=int, default=None, help="output frames of look-ahead (the row convolution's; default: the model's)")
    parser.add_argument("--input-lookahead", type=int, default=None, help="future frames stacked into the RNN's input (default: the model's)")
    parser.add_argument("--half", action="store_true", help="store the weights in half precision, as the bundled models are")
    args = parser.parse_args()
    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if model.config.bidirectional:
        parser.error(f"{args.model}: a bidirectional model sees the whole utterance; look-ahead widening is for streaming models")
    lookahead = model.config.lookahead if args.lookahead is None else args.lookahead
    try:
        wide = widened_lookahead(model, lookahead, args.input_lookahead)
    except ValueError as error:
        parser.error(f"{args.model}: {error}")
    save_model(args.output, wide, half=args.half, metadata=wide.metadata)
    print(f"{args.output}: look-ahead {wide.config.lookahead} output frames, input look-ahead {wide.config.input_lookahead} frames, {wide.n_params} parameters")


if __name__ == "__main__":
    main()
