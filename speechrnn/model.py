"""The GRU/LSTM CTC acoustic model, its config, and the one-file save/load format.

Shapes: ``B`` batch, ``T`` feature frames, ``U`` output frames (``T // frame_stack``),
``F`` features, ``H`` hidden units, ``V`` vocabulary size.
"""
from __future__ import annotations

import dataclasses
import io
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .cpu_gru import gru_layer, torch_gru_layer
from .features import Frontend, FrontendConfig, normalize_level
from .files import replace_atomically
from .text import VOCAB, Tokenizer

FORMAT = "speechrnn-model"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class ModelConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    vocab: tuple[str, ...] = VOCAB
    frame_stack: int = 3  # consecutive frames concatenated before the RNN (30 ms steps)
    n_proj: int = 320  # width of the input projection (Linear + ReLU)
    n_hidden: int = 320  # RNN units per direction
    n_layers: int = 3
    bidirectional: bool = True  # False for a streaming (causal, stateful) model
    rnn_type: str = "gru"  # "gru" or "lstm"
    dropout: float = 0.25  # between RNN layers
    io_dropout: float = 0.25  # on the input projection's output and before the CTC head
    lookahead: int = 0  # future output frames mixed into each frame after the RNN (row convolution)
    # Future stacked frames concatenated into each frame's input before the projection, so the
    # RNN itself reads them (latency input_lookahead * frame_shift, added to the row convolution's).
    input_lookahead: int = 0
    # Whole-utterance level normalisation (bidirectional models, which see the whole input
    # anyway): each input is scaled so its speech level is this many dB full scale, the median
    # of the training speech (None: off). A streaming model cannot know a level in advance.
    level_db: float | None = None
    # A 2-D convolution frontend: two 3x3 convolutions over (frames, features) with this many
    # channels and ReLUs, each halving the feature axis, before the frame stacking (0: off, the
    # features go to the stacking directly). A bidirectional model's kernels see the frames
    # before and after; a unidirectional (streaming) model's are causal, seeing the two before,
    # so it adds no latency.
    conv_channels: int = 0

    def __post_init__(self):
        if self.level_db is not None and not self.bidirectional:
            raise ValueError("level_db (whole-utterance level normalisation) needs a bidirectional model")
        if self.input_lookahead and self.bidirectional:
            # Its backward direction already reads every future frame: the stacked ones would
            # only widen the projection and add latency where a streaming model needs it.
            raise ValueError(f"input_lookahead ({self.input_lookahead}) needs a unidirectional (streaming) model; a bidirectional one reads the future already")
        if self.frontend.utterance_cmn and not self.bidirectional:
            raise ValueError("frontend.utterance_cmn (whole-utterance mean normalisation) needs a bidirectional model")
        if self.rnn_type not in ("gru", "lstm"):
            raise ValueError(f"rnn_type must be 'gru' or 'lstm', got {self.rnn_type!r}")
        if self.frame_stack < 1 or self.n_layers < 1 or self.n_hidden < 1 or self.n_proj < 1:
            raise ValueError("frame_stack, n_layers, n_hidden and n_proj must be positive")
        if self.lookahead < 0 or self.input_lookahead < 0:
            raise ValueError(f"lookahead and input_lookahead must be >= 0, got {self.lookahead} and {self.input_lookahead}")
        if self.conv_channels < 0:
            raise ValueError(f"conv_channels must be >= 0, got {self.conv_channels}")

    @property
    def frame_shift(self) -> float:
        """Seconds between two output frames."""
        return self.frame_samples / self.frontend.sample_rate

    def matches_apart_from_level(self, other: "ModelConfig") -> bool:
        """Whether ``other`` describes the same network and frontend as this config:
        equal but for ``level_db``, an input-level calibration measured on training speech after
        training, not learnt (so one model's weights may start, or blend with, the other's)."""
        return dataclasses.replace(self, level_db=None) == dataclasses.replace(other, level_db=None)

    @property
    def latency_frames(self) -> int:
        """Future output frames an output frame waits for: its input look-ahead and its row
        convolution's."""
        return self.input_lookahead + self.lookahead

    @property
    def frame_samples(self) -> int:
        """Input samples per output frame."""
        return self.frontend.hop_length * self.frame_stack

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["vocab"] = list(self.vocab)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        d["frontend"] = FrontendConfig(**d["frontend"])
        d["vocab"] = tuple(d["vocab"])
        return cls(**d)


def valid_frames(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` True where frame ``t`` of a padded ``(B, T, ...)`` batch ``x`` is within its row's length."""
    return torch.arange(x.shape[1], device=x.device)[None] < lens.to(x.device)[:, None]


class SpeechModel(nn.Module):
    """Frontend (with its CMVN statistics) + optional convolution frontend + frame stacking +
    RNN + linear CTC head.

    Example:
        >>> model = SpeechModel(ModelConfig(n_hidden=64, n_proj=64, n_layers=1))
        >>> feats, feat_lens = model.features(torch.zeros(2, 16000), torch.tensor([16000, 8000]))
        >>> log_probs, out_lens = model(feats, feat_lens)
        >>> log_probs.shape, out_lens.tolist()
        (torch.Size([2, 32, 29]), [32, 16])
    """

    def __init__(self, config: ModelConfig, empty_rnn: bool = False):
        """``empty_rnn``: leave the RNN's weights unallocated (on the meta device) for
        ``load_state_dict(..., assign=True)`` to fill, skipping their random initialisation
        (most of a model file's loading time otherwise)."""
        super().__init__()
        self.config = config
        self.tokenizer = Tokenizer(config.vocab)
        self.frontend = Frontend(config.frontend)
        n_in = config.frontend.n_features
        # CPU training runs the GRU through speechrnn.cpu_gru; False: PyTorch's GRU (scripts/bench_train.py --gru torch).
        self.own_cpu_gru = True
        self.conv = None
        if config.conv_channels:
            c = config.conv_channels
            # Causal kernels get their past frames from convolve_causal, so no padding in time.
            padding = 1 if config.bidirectional else (0, 1)
            self.conv = nn.ModuleList([nn.Conv2d(1, c, 3, stride=(1, 2), padding=padding), nn.Conv2d(c, c, 3, stride=(1, 2), padding=padding)])
            self.conv_in_features = (n_in, (n_in + 1) // 2)  # each stride-2 layer keeps ceil(F / 2) features
            n_in = c * ((self.conv_in_features[-1] + 1) // 2)
        self.proj = nn.Sequential(
            nn.Linear(n_in * config.frame_stack * (config.input_lookahead + 1), config.n_proj),
            nn.ReLU(),
            nn.Dropout(config.io_dropout),
        )
        rnn_class = nn.GRU if config.rnn_type == "gru" else nn.LSTM
        self.rnn = rnn_class(
            config.n_proj,
            config.n_hidden,
            num_layers=config.n_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
            device="meta" if empty_rnn else None,
        )
        self.dropout = nn.Dropout(config.io_dropout)
        n_directions = 2 if config.bidirectional else 1
        n_out = config.n_hidden * n_directions
        # Row convolution (DeepSpeech 2): each output frame also sees `lookahead` future frames,
        # per channel; its latency is lookahead * frame_shift.
        self.lookahead = nn.Conv1d(n_out, n_out, config.lookahead + 1, groups=n_out, bias=False) if config.lookahead else None
        if self.lookahead is not None:
            with torch.no_grad():  # start as the identity: the current frame only
                self.lookahead.weight.zero_()
                self.lookahead.weight[:, 0, 0] = 1.0
        self.head = nn.Linear(n_out, len(config.vocab))

    def features(self, waves: torch.Tensor, wave_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N)`` samples -> ``(B, T, F)`` normalised features and ``(B,)`` lengths."""
        if self.config.level_db is not None:
            waves = normalize_level(waves, wave_lens, self.config.level_db, self.config.frontend)
        return self.frontend(waves, wave_lens)

    def convolve(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> torch.Tensor:
        """The convolution frontend: ``(B, T, F)`` -> ``(B, T, C * F / 4)``. Frames past each
        row's length are zeroed before each layer, so a padded row reads as the same utterance
        alone does (its convolution's padding is zeros too). A causal frontend starts from zero
        frames before the first, as a fresh stream does (:meth:`convolve_causal`)."""
        valid = valid_frames(feats, feat_lens)[:, None, :, None]
        if not self.config.bidirectional:
            x, _ = self.convolve_causal(feats, self.conv_context(feats.shape[0]))
            return x * valid[:, 0]
        x = feats.unsqueeze(1)  # (B, 1, T, F)
        for conv in self.conv:
            x = torch.relu(conv(x * valid))
        return (x * valid).permute(0, 2, 1, 3).flatten(2)  # (B, C, T, F / 4) -> (B, T, C * F / 4)

    def conv_context(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """A causal convolution frontend's state at a stream's start: for each layer, the
        ``(B, C_in, 2, F_in)`` input frames before the first, zeros."""
        weight = self.conv[0].weight
        return tuple(weight.new_zeros(batch_size, conv.in_channels, 2, n_in) for conv, n_in in zip(self.conv, self.conv_in_features))

    def convolve_causal(self, feats: torch.Tensor, context: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The causal convolution frontend over frames that follow ``context`` (see
        :meth:`conv_context`): ``(B, T, F)``, ``T >= 1`` -> ``(B, T, C * F / 4)`` and the context
        after them, so a stream's chunks give exactly the frames of the whole input."""
        x, after = feats.unsqueeze(1), []  # (B, 1, T, F)
        for conv, before in zip(self.conv, context):
            x = torch.cat([before, x], dim=2)
            after.append(x[:, :, -2:])
            x = torch.relu(conv(x))
        return x.permute(0, 2, 1, 3).flatten(2), tuple(after)

    def stack_frames(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, F)`` -> ``(B, U, F * frame_stack)``, dropping a trailing partial group."""
        k = self.config.frame_stack
        n_out = feats.shape[1] // k
        stacked = feats[:, : n_out * k].reshape(feats.shape[0], n_out, -1)
        return stacked, feat_lens // k

    def forward(
        self,
        feats: torch.Tensor,
        feat_lens: torch.Tensor,
        hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        inter_layer: int = 0,
    ):
        """CTC log-probabilities of a padded batch.

        Args:
            feats: ``(B, T, F)`` normalised features.
            feat_lens: ``(B,)`` valid frames per row.
            hidden: initial RNN state ``(n_layers * directions, B, H)`` (a pair for LSTM),
                or None for zeros.
            inter_layer: if > 0 (GRU only, no ``hidden``), also return the log-probabilities
                the CTC head gives the output of the first ``inter_layer`` RNN layers, for an
                intermediate CTC loss in training (the head is shared: no extra weights).

        Returns:
            ``(B, U, V)`` log-probabilities, ``(B,)`` valid output frames (and the intermediate
            ``(B, U, V)`` log-probabilities when ``inter_layer`` is set).
        """
        if inter_layer and not (0 < inter_layer < self.config.n_layers and self.config.rnn_type == "gru" and hidden is None):
            raise ValueError(f"inter_layer needs a GRU of more than {inter_layer} layers and no initial state (n_layers {self.config.n_layers}, {self.config.rnn_type})")
        if self.conv is not None and feats.shape[1] > 0:
            feats = self.convolve(feats, feat_lens)
        x, out_lens = self.stack_frames(feats, feat_lens)
        if x.shape[1] == 0:
            empty = x.new_zeros(x.shape[0], 0, len(self.config.vocab))
            return (empty, out_lens, empty) if inter_layer else (empty, out_lens)
        if self.config.input_lookahead:
            # Frames past each row's length (and past the end) are zeros, as a stream's last
            # frames see at finalisation.
            x = self.with_future(nn.functional.pad(x * valid_frames(x, out_lens)[..., None], (0, 0, 0, self.config.input_lookahead)))
        x = self.proj(x)
        inter = None
        if inter_layer or (self.training and hidden is None and self.config.rnn_type == "gru" and x.device.type == "cpu"):
            x, inter = self._gru_padded(x, out_lens, keep_layer=inter_layer)
        else:
            lens = torch.clamp(out_lens, min=1).cpu()  # packing rejects empty rows; they are masked out below
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            # (Autograd needs the float32 module: the float16-weight one has no gradients.)
            rnn = (None if torch.is_grad_enabled() else half_weight_rnn(self)) or self.rnn
            out, _ = rnn(packed, hidden)
            x, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # zeros past each length
        if self.lookahead is not None:
            # Frames past the end are zeros, as a stream's last frames see at finalisation.
            x = self.mix_lookahead(nn.functional.pad(x, (0, 0, 0, self.config.lookahead)))
        log_probs = self.head(self.dropout(x)).log_softmax(dim=-1)
        if inter_layer:
            return log_probs, out_lens, self.head(self.dropout(inter)).log_softmax(dim=-1)
        return log_probs, out_lens

    def with_future(self, x: torch.Tensor) -> torch.Tensor:
        """The input look-ahead: ``(B, U + input_lookahead, I)`` stacked frames -> ``(B, U, I *
        (input_lookahead + 1))``, each frame followed by the ``input_lookahead`` frames after it
        (no frame while fewer than ``input_lookahead + 1`` are given)."""
        n = max(0, x.shape[1] - self.config.input_lookahead)
        return torch.cat([x[:, k : k + n] for k in range(self.config.input_lookahead + 1)], dim=-1)

    def mix_lookahead(self, x: torch.Tensor) -> torch.Tensor:
        """The row convolution: ``(B, U + lookahead, H)`` RNN outputs -> ``(B, U, H)``, each frame
        mixed with the ``lookahead`` frames after it.

        The sum of shifted products is the Conv1d's arithmetic, written out because PyTorch's
        depthwise convolution costs ~135 us per call on the CPU even for the few frames of a
        streaming chunk, about 4x as long as this sum (on whole utterances the two cost the same).
        """
        weight, n = self.lookahead.weight[:, 0], x.shape[1] - self.config.lookahead
        out = x[:, :n] * weight[:, 0]
        for k in range(1, self.config.lookahead + 1):
            out = out + x[:, k : k + n] * weight[:, k]
        return out

    def _gru_padded(self, x: torch.Tensor, lens: torch.Tensor, keep_layer: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The GRU stack on a padded ``(B, U, n_proj)`` batch, equal on every valid frame to the
        packed-sequence computation, and zero past each row's length; with ``keep_layer`` > 0
        also the output of the first ``keep_layer`` layers (before dropout), else None.

        Used in training on the CPU, and with ``keep_layer`` on any device: on the CPU each layer
        runs both directions side by side through :func:`speechrnn.cpu_gru.gru_layer` (a
        recurrence with its own backward pass, faster there than autograd through PyTorch's GRU;
        on a GPU PyTorch's GRU), the backward direction on the rows reversed within their
        lengths, since a padded backward direction would start in the padding. Inference
        stays on the packed module, which is faster without gradients (tests/test_model.py
        checks outputs and gradients against it).
        """
        rnn = self.rnn
        t = torch.arange(x.shape[1], device=x.device)[:, None]
        lens = lens.to(x.device)[None]
        valid = (t < lens)[..., None]  # (U, B, 1)
        reverse = torch.where(valid, lens[..., None] - 1 - t[..., None], t[..., None])  # flips each row within its length
        n_dirs = 2 if self.config.bidirectional else 1
        # PyTorch's GRU (cuDNN) on a GPU
        layer_fn = gru_layer if x.device.type == "cpu" and self.own_cpu_gru else torch_gru_layer
        x, kept = x.transpose(0, 1), None  # time-major (U, B, F) inside
        suffixes = ("", "_reverse")[:n_dirs]
        for layer in range(rnn.num_layers):
            weights = [tuple(getattr(rnn, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for suffix in suffixes]
            inputs = torch.stack([x, x.gather(0, reverse.expand(-1, -1, x.shape[2]))]) if n_dirs > 1 else x[None]
            outs = list(layer_fn(inputs, weights).unbind(0))
            if n_dirs > 1:
                outs[1] = outs[1].gather(0, reverse.expand(-1, -1, outs[1].shape[2]))
            x = torch.cat(outs, dim=-1) if n_dirs > 1 else outs[0]
            if layer + 1 == keep_layer:
                kept = (x * valid).transpose(0, 1)
            if layer < rnn.num_layers - 1:
                x = nn.functional.dropout(x, rnn.dropout, self.training)
        return (x * valid).transpose(0, 1), kept

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# What a model file saved in half precision gains on the CPU: its GRU weights are float16 values,
# and FBGEMM's float16-weight matrix products (float32 inputs and sums, through PyTorch's
# quantized_gru, the kernel of its dynamic float16 quantisation) run whole-utterance inference
# about 1.2x faster than MKL's float32 ones here. AN4 test: the same WER and CER, log-probabilities
# within 2e-5 (scripts/bench_transcribe.py --float32-kernels times the float32 path).
_half_weight_cache: "weakref.WeakKeyDictionary[SpeechModel, tuple[tuple, HalfWeightGRU | None]]" = weakref.WeakKeyDictionary()
_half_weight_lock = threading.Lock()  # transcription's worker threads share one model


class HalfWeightGRU:
    """A GRU's weights packed for FBGEMM's float16-weight products; called like the module on a
    packed sequence. Built by :func:`half_weight_rnn` (PyTorch's ``quantize_dynamic`` builds the
    same packing but first packs random weights of its own: 4x as long per model load here)."""

    def __init__(self, rnn: nn.GRU):
        self.num_layers, self.bidirectional, self.hidden_size = rnn.num_layers, rnn.bidirectional, rnn.hidden_size
        self.params = []
        for layer in range(rnn.num_layers):
            for suffix in ("", "_reverse")[: 2 if rnn.bidirectional else 1]:
                w_ih, w_hh, b_ih, b_hh = (getattr(rnn, f"{name}_l{layer}{suffix}").detach() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                packed_ih = torch.ops.quantized.linear_prepack_fp16(w_ih, b_ih)
                packed_hh = torch.ops.quantized.linear_prepack_fp16(w_hh, b_hh)
                self.params.append(torch.ops.quantized.make_quantized_cell_params_fp16(packed_ih, packed_hh))

    def __call__(self, packed: PackedSequence, hidden: torch.Tensor | None = None) -> tuple[PackedSequence, torch.Tensor]:
        if hidden is None:
            n_states = self.num_layers * (2 if self.bidirectional else 1)
            hidden = packed.data.new_zeros(n_states, int(packed.batch_sizes[0]), self.hidden_size)
        elif packed.sorted_indices is not None:
            hidden = hidden.index_select(1, packed.sorted_indices)
        out, hidden = torch.quantized_gru(packed.data, packed.batch_sizes, hidden, self.params, True, self.num_layers, 0.0, False, self.bidirectional)
        if packed.unsorted_indices is not None:
            hidden = hidden.index_select(1, packed.unsorted_indices)
        return PackedSequence(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), hidden


def half_weight_rnn(model: SpeechModel) -> HalfWeightGRU | None:
    """The model's GRU with float16-weight kernels, or None where they would change the model's
    arithmetic or do not apply: a weight matrix not exactly float16 values (only files saved
    with ``half=True`` qualify), training, an LSTM, not on the CPU, not float32, no x86
    quantized engine, or ``model.half_weight_kernels`` set to False.

    The weights are the same numbers, so only the order of float32 rounding differs from
    ``model.rnn``; the first call per weight version checks the weights and packs them.
    """
    rnn = model.rnn
    if type(rnn) is not nn.GRU or model.training or not getattr(model, "half_weight_kernels", True):
        return None
    weights = rnn._flat_weights
    if weights[0].device.type != "cpu" or weights[0].dtype != torch.float32 or not fbgemm_engine():
        return None
    key = tuple((w.data_ptr(), w._version) for w in weights)
    with _half_weight_lock:
        cached = _half_weight_cache.get(model)
        if cached is None or cached[0] != key:
            matrices = [w for name, w in zip(rnn._flat_weights_names, weights) if name.startswith("weight")]
            exact = all(float16_values(w) for w in matrices)
            cached = _half_weight_cache[model] = (key, HalfWeightGRU(rnn) if exact else None)
    return cached[1]


def fbgemm_engine() -> bool:
    """Whether PyTorch's quantized engine is FBGEMM's (x86 builds): it has the float16-weight kernels."""
    return torch.backends.quantized.engine in ("x86", "fbgemm")


def float16_values(weight: torch.Tensor) -> bool:
    """Whether a float32 tensor holds only float16 values (as a half-precision file's weights do)."""
    w = weight.detach()
    return w.dtype == torch.float32 and torch.equal(w, w.half().float())


def save_model(
    path: str | os.PathLike,
    model: SpeechModel,
    half: bool = False,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write config, vocabulary, CMVN statistics and weights to one file, atomically.

    Args:
        half: store floating-point weights as float16 (they are loaded back as float32).
        metadata: JSON-like facts kept beside the weights (training results, decoding defaults).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "metadata": metadata or {},
    }
    atomic_torch_save(payload, path)


def save_half_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Write ``target``: the model file ``source`` (a path or bundled name) with its weights in
    half precision and its metadata kept, as the bundled models are shipped. Returns ``target``."""
    model = load_model(source)
    save_model(target, model, half=True, metadata=model.metadata)
    return Path(target)


def widened_lookahead(model: SpeechModel, lookahead: int, input_lookahead: int | None = None) -> SpeechModel:
    """A copy of ``model`` whose row convolution sees ``lookahead`` future frames and whose input
    ``input_lookahead`` (None: the model's), each at least as many as ``model``'s: the taps and
    input weights it adds start at zero, so the copy's outputs equal the model's on every frame
    (a longer look-ahead fine-tuned from a trained model starts where it is)."""
    old, old_input = model.config.lookahead, model.config.input_lookahead
    input_lookahead = old_input if input_lookahead is None else input_lookahead
    if lookahead < old or input_lookahead < old_input:
        raise ValueError(f"a look-ahead of {lookahead} frames (input {input_lookahead}) cannot widen the model's {old} (input {old_input})")
    wide = SpeechModel(dataclasses.replace(model.config, lookahead=lookahead, input_lookahead=input_lookahead))
    state = model.state_dict()
    if lookahead > old:
        taps = torch.zeros_like(wide.lookahead.weight)
        if old:
            taps[:, :, : old + 1] = state["lookahead.weight"]
        else:
            taps[:, 0, 0] = 1.0  # no row convolution before: the current frame only
        state["lookahead.weight"] = taps
    if input_lookahead > old_input:  # the projection's inputs are the frames in time order: the new ones come last
        weight = torch.zeros_like(wide.proj[0].weight)
        weight[:, : state["proj.0.weight"].shape[1]] = state["proj.0.weight"]
        state["proj.0.weight"] = weight
    wide.load_state_dict(state)
    wide.metadata = dict(getattr(model, "metadata", {}))
    return wide.eval()


def widened_units(model: SpeechModel, n_hidden: int, n_proj: int | None = None, seed: int = 0) -> SpeechModel:
    """A copy of ``model`` with ``n_hidden`` RNN units per direction and an ``n_proj``-wide input
    projection (None: the model's), each at least the model's, that computes what the model
    computes: the added units' incoming weights start as a fresh model's would (seeded), and
    every weight that carries an added unit's output onward (into the RNN's gates and hidden
    state, the next layer, the CTC head) starts at zero, so they change nothing until training
    moves those weights (their gradients are not zero: the added units are active). For a GRU
    model; the start of a wider model fine-tuned from a trained one (the recipes' ``--init-from``
    with a larger ``--hidden``)."""
    old = model.config
    n_proj = old.n_proj if n_proj is None else n_proj
    if old.rnn_type != "gru":
        raise ValueError(f"only a GRU model widens (this one is {old.rnn_type})")
    if n_hidden < old.n_hidden or n_proj < old.n_proj:
        raise ValueError(f"{n_hidden} units and a projection of {n_proj} cannot widen the model's {old.n_hidden} and {old.n_proj}")
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        wide = SpeechModel(dataclasses.replace(old, n_hidden=n_hidden, n_proj=n_proj))
    state, fresh = model.state_dict(), wide.state_dict()
    h, p, n_dirs = old.n_hidden, old.n_proj, 2 if old.bidirectional else 1

    def grown(name: str, rows: list[int], cols: list[int] | None) -> torch.Tensor:
        """``fresh[name]`` with the old tensor placed at ``rows`` (and ``cols``), where the new
        input columns of old rows are zeroed (an added unit's output does not reach them)."""
        out, before = fresh[name].clone(), state[name]
        index = torch.tensor(rows)
        if cols is None:
            out[index] = before
            return out
        out[index] = 0.0
        out[index[:, None], torch.tensor(cols)[None]] = before
        return out

    def unit_rows(width: int, n_old: int, gates: int) -> list[int]:
        """Where the old units' rows sit among ``gates`` stacked gates of ``width`` rows each."""
        return [g * width + i for g in range(gates) for i in range(n_old)]

    def direction_cols(width: int, n_old: int) -> list[int]:
        """Where the old units' outputs sit in a layer's output (the directions side by side)."""
        return [d * width + i for d in range(n_dirs) for i in range(n_old)]

    widened = dict(fresh)
    for name, value in state.items():
        if name.startswith("proj.0."):  # its input is unchanged: only rows are added
            widened[name] = grown(name, list(range(p)), None)
        elif name.startswith("rnn."):
            layer = int(name.split("_l")[1].split("_")[0])
            rows = unit_rows(n_hidden, h, 3)
            if name.startswith("rnn.weight_ih"):
                cols = list(range(p)) if layer == 0 else direction_cols(n_hidden, h)
                widened[name] = grown(name, rows, cols)
            elif name.startswith("rnn.weight_hh"):
                widened[name] = grown(name, rows, list(range(h)))
            else:
                widened[name] = grown(name, rows, None)
        elif name == "lookahead.weight":
            widened[name] = grown(name, direction_cols(n_hidden, h), None)
        elif name == "head.weight":
            head = torch.zeros_like(fresh[name])
            head[:, torch.tensor(direction_cols(n_hidden, h))] = value
            widened[name] = head
        else:  # the frontend's statistics, the convolutions, the head's bias: unchanged in shape
            widened[name] = value
    wide.load_state_dict(widened)
    wide.metadata = dict(getattr(model, "metadata", {}))
    return wide.eval()


def differing_weights(a: str | os.PathLike | SpeechModel, b: str | os.PathLike | SpeechModel, half: bool = False) -> list[str]:
    """The names of the tensors two models (loaded, or files: paths or bundled names) do not hold
    alike, as loaded (a half-precision file reads as float32); with ``half``, floating-point
    tensors are compared once rounded to float16, as a shipped file holds them. A tensor only one
    holds counts."""
    mine, theirs = (m.state_dict() if isinstance(m, SpeechModel) else load_model(m).state_dict() for m in (a, b))

    def rounded(t: torch.Tensor) -> torch.Tensor:
        return t.half() if half and t.is_floating_point() else t

    return sorted(
        name for name in mine.keys() | theirs.keys()
        if name not in mine or name not in theirs or not torch.equal(rounded(mine[name]), rounded(theirs[name]))
    )


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` whole or not at all (:func:`speechrnn.files.replace_atomically`, synced
    to the disk before the rename)."""
    replace_atomically(path, lambda f: torch.save(obj, f), binary=True, sync=True)


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A bundled model's name (``offline``, ``streaming``) or a path -> an existing file."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    bundled = BUNDLED_DIR / f"{name_or_path}.pt"
    if bundled.is_file():  # (before a folder of the same name: "offline" is the bundled model wherever one runs it)
        return bundled
    if candidate.is_dir():
        raise FileNotFoundError(f"{candidate}: is a directory, not a model file")
    names = sorted(p.stem for p in BUNDLED_DIR.glob("*.pt"))
    raise FileNotFoundError(f"no model file {str(name_or_path)!r} and no bundled model of that name (bundled: {names})")


def load_model(name_or_path: str | os.PathLike = "offline", device: str | torch.device = "cpu", data: bytes | None = None) -> SpeechModel:
    """Load a model file written by :func:`save_model` (``weights_only=True``), in eval mode;
    ``data``: the file's bytes, where the caller has read them already (to hash them, say)."""
    path = resolve_model_path(name_or_path)
    try:
        payload = torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        # (The first line only: torch's advice for other files, to load with
        # weights_only=False, would run code from a file that is not ours.)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights_only" in reason or "weights only" in reason.lower():
            reason = "torch.load with weights_only=True cannot read it: not a file save_model wrote"
        elif isinstance(error, EOFError):
            reason = "empty or cut short"
        raise ValueError(f"{path}: not a readable speechrnn model file ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a speechrnn model file")
    if payload["version"] > FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {payload['version']} is newer than this speechrnn")
    model = SpeechModel(ModelConfig.from_dict(payload["config"]), empty_rnn=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state, assign=True)
    model.metadata = payload.get("metadata", {})
    model.source = str(path)
    return model.to(device).eval()
