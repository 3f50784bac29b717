"""Widen a model (a longer look-ahead, more RNN units) without changing what it reads.

Usage:
    .venv/bin/python scripts/widen_model.py MODEL OUT.pt [--lookahead 8] [--input-lookahead 4] [--hidden 384 [--proj 384]] [--half]

MODEL is a model file or a bundled model's name. A unidirectional model's look-ahead: the row
convolution's added taps and the projection's weights for added input frames start at zero
(speechrnn.model.widened_lookahead), so the copy emits what the model emits on every frame,
only later. More units (a GRU model, either direction): the added units' incoming weights start
as a fresh model's and every weight carrying their output onward at zero
(speechrnn.model.widened_units), so the copy emits what the model emits until training moves
them. Either is the start of a fine-tuning run (the recipes' --init-from widens the same way),
or a model of that shape to measure costs with (recipes/an4/RESULTS.md, session 46's
tentative-skip figures).
"""
from __future__ import annotations

import argparse

from speechrnn.model import load_model, save_model, widened_lookahead, widened_units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model file or bundled model name to read")
    parser.add_argument("output", help="model file to write (atomically)")
    parser.add_argument("--lookahead", type=int, default=None, help="output frames of look-ahead (the row convolution's; default: the model's)")
    parser.add_argument("--input-lookahead", type=int, default=None, help="future frames stacked into the RNN's input (default: the model's)")
    parser.add_argument("--hidden", type=int, default=None, help="RNN units per direction (default: the model's)")
    parser.add_argument("--proj", type=int, default=None, help="width of the input projection (default: --hidden where the model's equals its units, else the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the added units' incoming weights (default: %(default)s)")
    parser.add_argument("--half", action="store_true", help="store the weights in half precision, as the bundled models are")
    args = parser.parse_args()
    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    config = model.config
    lookahead = config.lookahead if args.lookahead is None else args.lookahead
    if (args.lookahead is not None or args.input_lookahead is not None) and config.bidirectional:
        parser.error(f"{args.model}: a bidirectional model sees the whole utterance; look-ahead widening is for streaming models")
    hidden = config.n_hidden if args.hidden is None else args.hidden
    proj = args.proj if args.proj is not None else hidden if config.n_proj == config.n_hidden else config.n_proj
    try:
        wide = widened_lookahead(model, lookahead, args.input_lookahead) if not config.bidirectional else model
        if (hidden, proj) != (config.n_hidden, config.n_proj):
            wide = widened_units(wide, hidden, proj, args.seed)
    except ValueError as error:
        parser.error(f"{args.model}: {error}")
    save_model(args.output, wide, half=args.half, metadata=wide.metadata)
    shape = f"{wide.config.n_hidden} units, projection {wide.config.n_proj}"
    if not wide.config.bidirectional:
        shape += f", look-ahead {wide.config.lookahead} output frames, input look-ahead {wide.config.input_lookahead} frames"
    print(f"{args.output}: {shape}, {wide.n_params} parameters")


if __name__ == "__main__":
    main()
