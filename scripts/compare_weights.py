"""Do two model files hold the same weights? How a recipe's rerun is checked against a bundled model.

Usage:
    .venv/bin/python scripts/compare_weights.py MODEL_A MODEL_B [--half]

Prints one JSON line: the number of tensors, how many differ and which (``--half``: floating-point
tensors compared once rounded to float16, as a shipped file holds them, so a float32 run can be
checked against the half-precision file it was bundled as). Exit status 1 if any differ.
"""
from __future__ import annotations

import argparse
import json
import sys

from speechrnn.model import differing_weights, load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="model file or bundled name")
    parser.add_argument("b", help="model file or bundled name")
    parser.add_argument("--half", action="store_true", help="compare floating-point tensors rounded to float16")
    args = parser.parse_args()
    a, b = load_model(args.a), load_model(args.b)  # each file read once, for the comparison and the count
    differing = differing_weights(a, b, half=args.half)
    n_tensors = len(a.state_dict().keys() | b.state_dict().keys())
    print(json.dumps({"a": args.a, "b": args.b, "half": args.half, "tensors": n_tensors, "differing": len(differing), "names": differing}))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
