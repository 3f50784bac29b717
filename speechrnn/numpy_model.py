"""A streaming model's per-chunk arithmetic in NumPy, for the CPU.

A stream advances a few streams by a few 20 ms output frames at a time (five for a 100 ms
chunk). At that size ATen spends most of each operator on dispatch rather than arithmetic,
so on the CPU :func:`speechrnn.streaming.forward_chunk` runs the input projection, the GRU
steps, the look-ahead mix and the CTC head here: the same equations and weights as
:class:`speechrnn.model.SpeechModel`, in fewer and cheaper calls. The results agree with the
module's to float32 rounding (tests/test_numpy_model.py).

Written here because no library runs a PyTorch GRU step by step without that overhead:
TorchScript still dispatches each operator through ATen, and ONNX Runtime would add a large
dependency and an export step. A numba kernel (numba comes with librosa) for the recurrent
loop was tried: from as fast as this to 20% faster on the bundled model's GRU in trials here,
but it compiles on first use (1-2.5 s, then about 0.5 s per process from its cache), which
every process that streams would pay; not taken.

A model file saved in half precision holds float16 weights; for such a model the matrix
products go through FBGEMM's float16-weight kernels (float32 inputs and sums), the same numbers
at about two thirds of the time per chunk here (the packed weights are half the size, and
FBGEMM's small products beat MKL's on this CPU).

Shapes: ``B`` streams, ``U`` output frames, ``I`` inputs per frame (its stacked features, and
those of an input look-ahead's frames after it), ``H`` RNN outputs per frame, ``V`` vocabulary.
"""
from __future__ import annotations

import warnings
import weakref

import numpy as np
import torch

from .model import SpeechModel, fbgemm_engine, float16_values


class NumpyModel:
    """The weights of a unidirectional GRU :class:`SpeechModel` laid out for NumPy.

    Use :func:`numpy_model` to get one: it is built once per model and rebuilt when a weight
    changes.

    Example:
        >>> from speechrnn.model import ModelConfig
        >>> model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=2, bidirectional=False)).eval()
        >>> steps = numpy_model(model)
        >>> n_in = model.config.frontend.n_features * model.config.frame_stack
        >>> out, hidden = steps.rnn(np.zeros((1, 3, n_in), np.float32), np.zeros((2, 1, 16), np.float32))
        >>> steps.head(out).shape
        (1, 3, 29)
    """

    def __init__(self, model: SpeechModel):
        proj, rnn = model.proj[0], model.rnn
        self.lookahead = model.config.lookahead
        # Products as row vectors times contiguous (in, out) matrices, the fastest layout.
        self.proj_weight, self.proj_bias = torch.from_numpy(_transposed(proj.weight)), torch.from_numpy(_array(proj.bias))
        self.layers = []
        for layer in range(rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = (_array(getattr(rnn, f"{name}_l{layer}")) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            n_hidden = w_hh.shape[1]
            gates = slice(0, 2 * n_hidden)  # reset and update gates
            b_in = b_ih.copy()
            b_in[gates] += b_hh[gates]
            w_ih_t, w_hh_t = np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)
            b_hn = b_hh[2 * n_hidden :].copy()
            # sigmoid(x) = (1 + tanh(x / 2)) / 2. The gates' weights and biases are halved here
            # once, so a step takes one tanh with no scaling of its input; the new gate's
            # recurrent term is halved too, so (1 + tanh) times it is the reset gate's product.
            for array in (w_ih_t[:, gates], w_hh_t, b_in[gates], b_hn):
                array *= 0.5
            self.layers.append((torch.from_numpy(w_ih_t), torch.from_numpy(b_in), w_hh_t, b_hn))
        # Float16 weight kernels where every matrix is float16 values (a half-precision file):
        # PyTorch's fbgemm_* functions, deprecated in favour of its quantisation modules, whose
        # calls cost 20 us more each from Python; without them the float32 products are used.
        self.half = getattr(model, "half_weight_kernels", True) and _half_weight_products() and all(float16_values(w) for w in [proj.weight, *(getattr(rnn, f"weight_{kind}_l{i}") for i in range(rnn.num_layers) for kind in ("ih", "hh"))])
        if self.half:
            pack = torch.fbgemm_pack_gemm_matrix_fp16
            self.proj_packed = pack(proj.weight.detach().contiguous())
            self.layers_packed = [(pack(w_ih_t.t().contiguous()), pack(torch.from_numpy(w_hh_t).t().contiguous())) for w_ih_t, _, w_hh_t, _ in self.layers]
        self.mix = _array(model.lookahead.weight[:, 0]).T.copy() if model.lookahead is not None else None  # (lookahead + 1, H)
        self.head_weight, self.head_bias = _transposed(model.head.weight), _array(model.head.bias)

    def rnn(self, x: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, U, I)`` stacked features and ``(L, B, H)`` GRU state -> ``(B, U, H)`` GRU outputs
        and the new state (``model.rnn(model.proj(x), hidden)`` in eval mode)."""
        half = self.half
        x = _affine_half(x, self.proj_packed, self.proj_bias) if half else _affine(x, self.proj_weight, self.proj_bias)
        np.maximum(x, 0.0, out=x)
        new_hidden = np.empty_like(hidden)
        for layer, (w_ih_t, b_in, w_hh_t, b_hn) in enumerate(self.layers):
            n_hidden = w_hh_t.shape[0]
            packed_ih, packed_hh = self.layers_packed[layer] if half else (None, None)
            # (B, U, 3H): all steps' input terms in one product
            gates_in = _affine_half(x, packed_ih, b_in) if half else _affine(x, w_ih_t, b_in)
            h = hidden[layer]
            x = np.empty((x.shape[0], x.shape[1], n_hidden), dtype=np.float32)
            for t in range(x.shape[1]):
                # (B, 3H): reset, update, new
                gates = _linear_half(torch.from_numpy(h), packed_hh, None).numpy() if half else h @ w_hh_t
                reset_update = gates[:, : 2 * n_hidden]
                reset_update += gates_in[:, t, : 2 * n_hidden]
                np.tanh(reset_update, out=reset_update)
                reset_update += 1.0  # twice the sigmoids: the halves are taken below
                new = gates[:, 2 * n_hidden :]
                new += b_hn
                new *= reset_update[:, :n_hidden]
                new += gates_in[:, t, 2 * n_hidden :]
                np.tanh(new, out=new)
                # h' = (1 - z) * n + z * h = n + z * (h - n), written into the output frame.
                h_next = x[:, t]
                np.subtract(h, new, out=h_next)
                h_next *= reset_update[:, n_hidden:]
                h_next *= 0.5
                h_next += new
                h = h_next
            new_hidden[layer] = h
        return x, new_hidden

    def head(self, outputs: np.ndarray) -> np.ndarray:
        """``(B, U, H)`` GRU outputs -> ``(B, U, V)`` log-probabilities, each frame mixed with
        the ``lookahead`` frames after it, frames past the end taken as zeros (as in
        ``SpeechModel.forward``)."""
        if self.mix is not None:
            n_frames = outputs.shape[1]
            padded = np.zeros((outputs.shape[0], n_frames + self.lookahead, outputs.shape[2]), dtype=np.float32)
            padded[:, :n_frames] = outputs
            mixed = outputs * self.mix[0]
            for k in range(1, self.lookahead + 1):
                mixed += padded[:, k : k + n_frames] * self.mix[k]
            outputs = mixed
        logits = outputs @ self.head_weight
        logits += self.head_bias
        logits -= logits.max(axis=-1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        return logits


_cache: "weakref.WeakKeyDictionary[SpeechModel, tuple[tuple, NumpyModel]]" = weakref.WeakKeyDictionary()


def numpy_model(model: SpeechModel) -> NumpyModel | None:
    """The model's :class:`NumpyModel`, or None where it does not apply (the model is on a GPU,
    not float32, training, bidirectional, or an LSTM): built on first use and cached until a
    weight changes (in place: its version; replaced: its storage) or ``model.half_weight_kernels``
    does (False: float32 products even for float16 weights)."""
    config, rnn = model.config, model.rnn
    if model.training or config.bidirectional or config.rnn_type != "gru" or not rnn.bias or not rnn.batch_first:
        return None
    if model.head.weight.device.type != "cpu" or model.head.weight.dtype != torch.float32:
        return None
    # The weights by direct attribute (walking model.parameters() would cost more than a step).
    weights = [model.proj[0].weight, model.proj[0].bias, *rnn._flat_weights, model.head.weight, model.head.bias]
    if model.lookahead is not None:
        weights.append(model.lookahead.weight)
    key = (getattr(model, "half_weight_kernels", True), *((w.data_ptr(), w._version) for w in weights))
    cached = _cache.get(model)
    if cached is None or cached[0] != key:
        cached = _cache[model] = (key, NumpyModel(model))
    return cached[1]


def _affine(x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """``(B, U, in)`` times ``(in, out)`` plus ``(out,)``. Through ATen: for a chunk's few rows its
    matrix product is faster than NumPy's BLAS (one call, so its overhead is paid once)."""
    flat = torch.from_numpy(np.ascontiguousarray(x).reshape(-1, x.shape[-1]))
    return torch.addmm(bias, flat, weight).numpy().reshape(x.shape[0], x.shape[1], weight.shape[1])


def _affine_half(x: np.ndarray, packed, bias: torch.Tensor) -> np.ndarray:
    """:func:`_affine` with a weight packed by ``torch.fbgemm_pack_gemm_matrix_fp16``."""
    flat = torch.from_numpy(np.ascontiguousarray(x).reshape(-1, x.shape[-1]))
    return _linear_half(flat, packed, bias).numpy().reshape(x.shape[0], x.shape[1], bias.shape[0])


def _linear_half(x: torch.Tensor, packed, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.fbgemm_linear_fp16_weight_fp32_activation(x, packed, bias)


def _half_weight_products() -> bool:
    """Whether this PyTorch has FBGEMM's float16-weight products (x86 builds)."""
    if not hasattr(torch, "fbgemm_linear_fp16_weight_fp32_activation") or not fbgemm_engine():
        return False
    # They warn once per process that they are deprecated; speechrnn falls back to float32
    # without them, so the warning would only clutter `speechrnn live`'s stderr.
    warnings.filterwarnings("ignore", message=r"fbgemm_(pack_gemm_matrix|linear)_fp16\w* is deprecated")
    return True


def _array(parameter: torch.Tensor) -> np.ndarray:
    return parameter.detach().numpy().astype(np.float32, copy=True)


def _transposed(weight: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(_array(weight).T)
