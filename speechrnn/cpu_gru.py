"""The GRU recurrence for training on the CPU, with a hand-written backward pass.

Shapes: ``T`` steps, ``D`` directions (run side by side, each with its own weights), ``B``
batch, ``H`` hidden size. Gates are ordered as PyTorch's GRU orders them (reset, update, new):

    r = sigmoid(gi_r + W_hr h + b_hr)
    z = sigmoid(gi_z + W_hz h + b_hz)
    n = tanh(gi_n + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

where ``gi = W_i x + b_i`` is computed for all steps at once by the caller.

Written here because no library offers it: on the CPU, autograd through PyTorch's GRU (which
runs it there as per-step cell operations) computes the recurrent weights' gradient one step
at a time, a ``(3H, B) @ (B, H)`` product and a ``(3H, H)`` accumulation per step and
direction, and records a dozen graph nodes per step. Here the backward pass's per-step loop
computes only what the recurrence needs (the gates' and the hidden state's gradients); the
weights' gradient is one matrix product over all steps afterwards, and both directions of a
layer share one loop (batched matrix products), halving the per-step operator calls. A whole
training step of the recipe's offline model runs 1.28x faster, the streaming model's 1.22x
(session 29, ``scripts/bench_train.py --variant offline streaming --gru speechrnn torch --rounds 2``). tests/test_cpu_gru.py checks
values and gradients against ``torch.nn.GRU`` and numerical gradients.
"""
from __future__ import annotations

import warnings

import torch


class _GRURecurrence(torch.autograd.Function):
    # Time-major buffers, so that each step's slices are contiguous (a matrix product into a
    # strided slice runs one direction at a time, and slower).
    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, n_dirs, batch, three_h = gi.shape
        hidden = three_h // 3
        w_t = w_hh.transpose(1, 2).contiguous()  # (D, H, 3H): row-major here multiplies faster
        bias = b_hh.unsqueeze(1)  # (D, 1, 3H)
        out = gi.new_empty(steps, n_dirs, batch, hidden)
        gh = gi.new_empty(steps, n_dirs, batch, three_h)  # W_h h + b_h, kept for the backward pass
        rz = gi.new_empty(steps, n_dirs, batch, 2 * hidden)
        new = gi.new_empty(steps, n_dirs, batch, hidden)
        h = gi.new_zeros(n_dirs, batch, hidden)
        for t in range(steps):
            torch.baddbmm(bias, h, w_t, out=gh[t])
            torch.add(gi[t, ..., : 2 * hidden], gh[t, ..., : 2 * hidden], out=rz[t]).sigmoid_()
            r, z = rz[t, ..., :hidden], rz[t, ..., hidden:]
            torch.addcmul(gi[t, ..., 2 * hidden :], r, gh[t, ..., 2 * hidden :], out=new[t]).tanh_()
            h = torch.lerp(new[t], h, z, out=out[t])  # n + z * (h - n)
        ctx.save_for_backward(w_hh, out, gh, rz, new)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        w_hh, out, gh, rz, new = ctx.saved_tensors
        steps, n_dirs, batch, hidden = out.shape
        r, z = rz[..., :hidden], rz[..., hidden:]
        h_prev = torch.cat([out.new_zeros(1, n_dirs, batch, hidden), out[:-1]])
        # The parts of each gate's derivative that do not depend on the incoming gradient, for
        # all steps at once: d(pre-tanh n) = dh * (1 - z)(1 - n^2), d(pre-sigmoid z) =
        # dh * (h_prev - n) z (1 - z), d(pre-sigmoid r) = d(pre-tanh n) * (W_hn h + b_hn) r (1 - r).
        to_new = (1 - z) * (1 - new * new)
        to_update = (h_prev - new) * z * (1 - z)
        to_reset = gh[..., 2 * hidden :] * r * (1 - r)
        d_gh = torch.empty_like(gh)  # gradient of W_h h + b_h: (dr, dz, dn * r)
        d_new = torch.empty_like(new)  # gradient of the pre-tanh n, which is also gi_n's
        dh = grad_out.new_zeros(n_dirs, batch, hidden)
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_out[t]
            torch.mul(dh, to_new[t], out=d_new[t])
            torch.mul(d_new[t], to_reset[t], out=d_gh[t, ..., :hidden])
            torch.mul(dh, to_update[t], out=d_gh[t, ..., hidden : 2 * hidden])
            torch.mul(d_new[t], r[t], out=d_gh[t, ..., 2 * hidden :])
            dh = torch.baddbmm(dh * z[t], d_gh[t], w_hh)
        d_gi = torch.cat([d_gh[..., : 2 * hidden], d_new], dim=-1)
        # The weights' gradient over all steps in one product: (D, 3H, T*B) @ (D, T*B, H).
        flat_d_gh = d_gh.transpose(0, 1).reshape(n_dirs, steps * batch, 3 * hidden)
        flat_h = h_prev.transpose(0, 1).reshape(n_dirs, steps * batch, hidden)
        d_w_hh = torch.bmm(flat_d_gh.transpose(1, 2), flat_h)
        return d_gi, d_w_hh, flat_d_gh.sum(dim=1)


def gru_recurrence(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """Run GRU recurrences from zero initial states.

    Args:
        gi: ``(T, D, B, 3H)`` input gate pre-activations ``W_i x + b_i``, one set per direction
            (any strides).
        w_hh: ``(D, 3H, H)`` recurrent weights (``weight_hh`` of each direction).
        b_hh: ``(D, 3H)`` recurrent biases.

    Returns:
        ``(T, D, B, H)`` hidden states; differentiable in all three inputs.
    """
    if gi.dim() != 4 or gi.shape[-1] % 3 or w_hh.shape != (gi.shape[1], gi.shape[-1], gi.shape[-1] // 3) or b_hh.shape != (gi.shape[1], gi.shape[-1]):
        raise ValueError(f"gru_recurrence needs gi (T, D, B, 3H), w_hh (D, 3H, H), b_hh (D, 3H); got {tuple(gi.shape)}, {tuple(w_hh.shape)}, {tuple(b_hh.shape)}")
    return _GRURecurrence.apply(gi, w_hh, b_hh)


def gru_layer(x: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One GRU layer, each direction from a zero state over its own inputs.

    Args:
        x: ``(D, T, B, F)`` inputs of each direction (time-major).
        weights: per direction ``(weight_ih, weight_hh, bias_ih, bias_hh)`` as ``torch.nn.GRU``
            names them.

    Returns:
        ``(D, T, B, H)`` hidden states.
    """
    w_ih, w_hh, b_ih, b_hh = (torch.stack(w) for w in zip(*weights))
    # Input gates of every step in one product per direction: (D, T*B, F) @ (D, F, 3H).
    n_dirs, steps, batch, n_in = x.shape
    gi = torch.baddbmm(b_ih.unsqueeze(1), x.reshape(n_dirs, steps * batch, n_in), w_ih.transpose(1, 2))
    return gru_recurrence(gi.view(n_dirs, steps, batch, -1).transpose(0, 1), w_hh, b_hh).transpose(0, 1)


def torch_gru_layer(x: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """:func:`gru_layer` computed by PyTorch's GRU (``torch._VF.gru``, the call
    ``torch.nn.GRU`` makes), one direction at a time: on a GPU its cuDNN kernels beat any
    per-step loop, and on the CPU it is what :func:`gru_layer` is measured against
    (``scripts/bench_train.py --gru speechrnn torch``). Same arguments and result."""
    outs = []
    with warnings.catch_warnings():
        # cuDNN wants a layer's weights in one buffer and, given the model's views, copies
        # them into one at each call, with a warning each epoch: a copy of one layer's weights
        # (a few MB) is cheap next to the step, and the model keeps one set of weights.
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
        for inputs, direction in zip(x, weights):
            h0 = inputs.new_zeros(1, inputs.shape[1], direction[1].shape[1])
            outs.append(torch._VF.gru(inputs, h0, list(direction), True, 1, 0.0, True, False, False)[0])
    return torch.stack(outs)
