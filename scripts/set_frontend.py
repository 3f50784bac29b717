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
    """A new model with ``model``'s weights and statistics and its frontend options changed.

    Turning on ``running_cmn_frames`` gives the running mean its prior from the model's own
    statistics: the log-mel energies whose features are the normalisation mean (the mean
    itself for a log-mel frontend; for MFCCs, the log-mel energies the DCT maps onto it), and
    that mean less their features, so the new model reads each utterance's first frames
    exactly as the old one did."""
    config = dataclasses.replace(model.config, frontend=dataclasses.replace(model.config.frontend, **changes))
    changed = SpeechModel(config)
    state = model.state_dict()
    if "frontend.cmn_prior" in changed.state_dict() and "frontend.cmn_prior" not in state:
        old = model.config.frontend
        if old.utterance_cmn:
            raise ValueError("running_cmn_frames: the prior cannot come from a model whose statistics are of mean-normalised frames (utterance_cmn)")
        mean = state["frontend.cmvn_mean"]
        prior = mean if old.kind == "logmel" else mean @ model.frontend.dct.T  # the DCT's columns are orthonormal
        state["frontend.cmn_prior"] = prior
        state["frontend.cmvn_mean"] = mean - model.frontend.transform(prior)
    changed.load_state_dict(state)
    changed.metadata = dict(getattr(model, "metadata", {}))
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
