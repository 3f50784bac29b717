"""Average the weights of several model files of one lineage (a "model soup").

Usage:
    .venv/bin/python scripts/average_models.py A.pt B.pt [C.pt ...] -o SOUP.pt [--weights WA WB ...] [--half] [--settings-from MODEL]

Each input is a model file or a bundled model's name; all must share one model config (e.g.
training cycles each started from the same file with --init-from). The output is the mean of
their weights (speechrnn.train.average_models), or with ``--weights`` a weighted mean (one weight a
file, scaled to sum to 1: ``--weights 3 1`` is three parts A to one part B), written atomically; read it with
scripts/compare_models.py as any model file. ``--settings-from MODEL`` writes SOUP.lm.json with
MODEL's decoding settings (its LM, lexicon, weights and beam; not its figures or partners), so
the soup is read with the LM as MODEL is; otherwise tune settings with `speechrnn lm tune`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechrnn.decoding import BeamSearchConfig, read_settings, tuning_path
from speechrnn.model import resolve_model_path, save_model
from speechrnn.files import write_atomic
from speechrnn.train import average_models
from speechrnn.tuning import settings_relative_to


def copy_settings(source_model: str, output: Path) -> Path:
    """Write ``output``'s settings file with ``source_model``'s search settings (LM and lexicon
    paths relative to it, as `speechrnn lm tune` writes them); returns its path."""
    settings_file = tuning_path(resolve_model_path(source_model))
    config = BeamSearchConfig.from_dict(read_settings(settings_file), base=settings_file.parent)
    target = tuning_path(output)
    settings = {**settings_relative_to(config, target), "copied_from": str(settings_file)}
    write_atomic(target, json.dumps(settings, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model files or bundled model names to average (two or more)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (atomically)")
    parser.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight a model file, in their order, scaled to sum to 1 (equal by default)")
    parser.add_argument("--half", action="store_true", help="store the weights in half precision, as the bundled models are")
    parser.add_argument("--settings-from", metavar="MODEL", help="write OUTPUT.lm.json with this model's decoding settings (a model file or bundled name with a .lm.json)")
    args = parser.parse_args()
    output = Path(args.output)
    if output.suffix != ".pt":
        parser.error(f"{output}: the output's name must end in .pt (its settings file goes beside it as .lm.json)")
    try:
        soup = average_models(args.models, args.weights)
        settings_file = tuning_path(resolve_model_path(args.settings_from)) if args.settings_from else None
        if settings_file is not None and not settings_file.is_file():
            raise ValueError(f"--settings-from {args.settings_from}: it has no decoding settings file ({settings_file})")
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    save_model(output, soup, half=args.half, metadata=soup.metadata)
    shares = soup.metadata.get("average_weights")
    kind = f"the mean of {len(args.models)} models' weights" if shares is None else f"a weighted mean of {len(args.models)} models' weights ({', '.join(f'{share:g}' for share in shares)})"
    print(f"{output}: {kind}, {soup.n_params} parameters")
    if args.settings_from:
        print(f"{copy_settings(args.settings_from, output)}: {args.settings_from}'s decoding settings")


if __name__ == "__main__":
    main()
