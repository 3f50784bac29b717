"""Copy a model file with some of its frontend options changed, its weights as they are.

Usage:
    .venv/bin/python scripts/set_frontend.py MODEL OUT OPTION=VALUE [OPTION=VALUE ...]

For example ``level_start_lead_db=43``: how the same weights read with another frontend setting
(then ``scripts/bench_robustness.py --model OUT``), or a start file for ``recipes/an4/run.py
--init-from``, which takes weights only from a file with the options it trains with. VALUE is
read as JSON (``43``, ``null``, ``true``); the options are :class:`speechrnn.features.FrontendConfig`'s,
checked as it checks them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from speechrnn.model import SpeechModel, load_model, save_model


def with_frontend(model: SpeechModel, **changes) -> SpeechModel:
    """A new model with ``model``'s weights and statistics and its frontend options changed."""
    config = dataclasses.replace(model.config, frontend=dataclasses.replace(model.config.frontend, **changes))
    changed = SpeechModel(config)
    changed.load_state_dict(model.state_dict())
    changed.metadata = dict(model.metadata)
    return changed.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="a bundled model's name or a model file")
    parser.add_argument("out", help="the model file to write")
    parser.add_argument("options", nargs="+", metavar="OPTION=VALUE")
    args = parser.parse_args()
    changes = {}
    for item in args.options:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: expected OPTION=VALUE")
        changes[name] = json.loads(value)
    model = load_model(args.model)
    try:
        changed = with_frontend(model, **changes)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    save_model(args.out, changed, metadata={**changed.metadata, "frontend_changed": changes})


if __name__ == "__main__":
    main()
