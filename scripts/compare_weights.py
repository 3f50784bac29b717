"""Do two model files hold the same weights? How a recipe's rerun is checked against a bundled model.

Usage:
    .venv/bin/python scripts/compare_weights.py MODEL_A MODEL_B [--half] [--difference NAME ...]

Prints one JSON line: the number of tensors, how many differ and which (``--half``: floating-point
tensors compared once rounded to float16, as a shipped file holds them, so a float32 run can be
checked against the half-precision file it was bundled as). Exit status 1 if any differ.
``--difference NAME`` adds how far the named tensors moved: the mean, least and greatest of
MODEL_B's less MODEL_A's, element by element (e.g. ``frontend.cmn_prior``, a running mean's prior
in natural-log mel power, after ``recipes/an4/run.py --own-statistics``).
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
    parser.add_argument("--difference", nargs="+", default=[], metavar="NAME", help="also print the mean, least and greatest of B's less A's for these tensors")
    args = parser.parse_args()
    a, b = load_model(args.a), load_model(args.b)  # each file read once, for the comparison and the count
    differing = differing_weights(a, b, half=args.half)
    state_a, state_b = a.state_dict(), b.state_dict()
    n_tensors = len(state_a.keys() | state_b.keys())
    result = {"a": args.a, "b": args.b, "half": args.half, "tensors": n_tensors, "differing": len(differing), "names": differing}
    if args.difference:
        result["differences"] = {}
        for name in args.difference:
            if name not in state_a or name not in state_b or state_a[name].shape != state_b[name].shape:
                parser.error(f"--difference {name}: not a tensor of the same shape in both files")
            delta = state_b[name].double() - state_a[name].double()
            result["differences"][name] = {"mean": round(float(delta.mean()), 4), "min": round(float(delta.min()), 4), "max": round(float(delta.max()), 4)}
    print(json.dumps(result))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
