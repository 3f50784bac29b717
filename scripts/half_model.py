"""Store a model file's weights in half precision, as the bundled models are stored.

Usage:
    .venv/bin/python scripts/half_model.py MODEL.pt HALF.pt

Half the size; on the CPU a half-precision unidirectional model streams through FBGEMM's
float16-weight kernels (speechrnn/numpy_model.py), about a third faster per chunk. The
bundled models read AN4 dev and test the same in either precision (recipes/an4/RESULTS.md).
The model's metadata is kept; a tuned settings file beside the input is not copied.
"""
from __future__ import annotations

import argparse

from speechrnn.model import load_model, save_half_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model file to read")
    parser.add_argument("output", help="model file to write (atomically)")
    args = parser.parse_args()
    save_half_copy(args.model, args.output)
    model = load_model(args.output)
    print(f"{args.output}: {model.n_params} parameters in half precision")


if __name__ == "__main__":
    main()
