"""The training-time GRU recurrence with its hand-written backward pass (speechrnn/cpu_gru.py)."""
from __future__ import annotations

import warnings

import pytest
import torch

from speechrnn.cpu_gru import gru_layer, gru_recurrence, torch_gru_layer


@pytest.mark.parametrize("n_dirs", [1, 2])
def test_backward_pass_matches_numerical_gradients(n_dirs):
    torch.manual_seed(0)
    gi = torch.randn(5, n_dirs, 3, 12, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(n_dirs, 12, 4, dtype=torch.float64, requires_grad=True)
    b_hh = torch.randn(n_dirs, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gru_recurrence, (gi, w_hh, b_hh))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_layer_equals_torch_gru_in_values_and_gradients(dtype, tolerance):
    """Both directions of a bidirectional torch.nn.GRU layer: outputs and the gradients of the
    inputs and of all eight weight tensors."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, bidirectional=True).to(dtype)
    x = torch.randn(9, 4, 6, dtype=dtype, requires_grad=True)  # (T, B, F)
    expected, _ = gru(x)
    weights = [tuple(getattr(gru, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for suffix in ("", "_reverse")]
    forward, backward = gru_layer(torch.stack([x, x.flip(0)]), weights)
    got = torch.cat([forward, backward.flip(0)], dim=-1)
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)

    upstream = torch.randn_like(expected)
    inputs = [x, *gru.parameters()]
    for a, b in zip(torch.autograd.grad(got, inputs, upstream), torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)


def test_torch_gru_layer_computes_the_same_layer():
    """The layer by PyTorch's GRU (the GPU path, and the CPU timing baseline) gives the same
    outputs and gradients on time-major inputs of two directions."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, bidirectional=True)
    weights = [tuple(getattr(gru, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for suffix in ("", "_reverse")]
    x = torch.randn(2, 7, 3, 6, requires_grad=True)
    upstream = torch.randn(2, 7, 3, 5)
    results = []
    for layer in (gru_layer, torch_gru_layer):
        out = layer(x, weights)
        results.append((out, torch.autograd.grad(out, [x, *gru.parameters()], upstream)))
    (ours, our_grads), (theirs, their_grads) = results
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    for a, b in zip(our_grads, their_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and SPEECHRNN_TEST_CUDA=1 (tests/conftest.py): cuDNN's GRU is the one that warns")
def test_torch_gru_layer_on_a_gpu_runs_a_stack_layer_by_layer_without_warnings():
    """Layer by layer over a two-layer bidirectional GRU's own weights on the GPU (as training
    with the intermediate CTC loss runs there): the stack's outputs, and no warning about
    weights outside cuDNN's single buffer at every call."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, num_layers=2, bidirectional=True).cuda()
    x = torch.randn(7, 3, 6, device="cuda")
    expected, _ = gru(x)
    out = x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for layer in range(2):
            weights = [tuple(getattr(gru, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for suffix in ("", "_reverse")]
            forward, backward = torch_gru_layer(torch.stack([out, out.flip(0)]), weights)
            out = torch.cat([forward, backward.flip(0)], dim=-1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_wrong_shapes_are_refused():
    gi = torch.randn(5, 2, 3, 12)
    with pytest.raises(ValueError, match=r"w_hh \(D, 3H, H\)"):
        gru_recurrence(gi, torch.randn(1, 12, 4), torch.randn(2, 12))
