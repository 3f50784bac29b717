"""speechrnn: streaming speech recognition with GRU-CTC models."""
from __future__ import annotations

from .audio import SAMPLE_RATE, AudioError, load_audio
from .decoding import BeamSearch, BeamSearchConfig, beam_search_for
from .model import ModelConfig, SpeechModel, load_model, save_model
from .streaming import StreamingRecognizer
from .transcribe import recognize, transcribe_files

__all__ = ["SAMPLE_RATE", "AudioError", "load_audio", "BeamSearch", "BeamSearchConfig", "beam_search_for", "ModelConfig", "SpeechModel", "load_model", "save_model", "recognize", "transcribe_files", "transcribe", "StreamingRecognizer"]
__version__ = "0.1.0"


def transcribe(audio, model: SpeechModel | str = "offline", lm: str | None = "default", rescore: str | None = "default", hot_words=()) -> str:
    """Transcribe one file path, or a ``(N,)`` array of 16 kHz samples, to text (with the
    model's tuned LM by default; ``lm="none"`` for greedy decoding, or an ARPA path; with the LM,
    ``rescore`` names a model whose second pass re-ranks the n best, see speechrnn.rescoring;
    ``hot_words``: ``(word, boost)`` pairs, see :class:`BeamSearchConfig`)."""
    import numpy as np
    import torch

    model = load_model(model) if isinstance(model, str) else model
    samples = load_audio(audio) if isinstance(audio, (str, bytes)) or hasattr(audio, "__fspath__") else np.asarray(audio, dtype=np.float32)
    return recognize(model, [torch.from_numpy(samples)], search=beam_search_for(model, lm, rescore=rescore, hot_words=tuple(hot_words) or None))[0].text
