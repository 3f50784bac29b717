"""The stream's NumPy steps compute what the torch module computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from speechrnn.model import ModelConfig, SpeechModel
from speechrnn.numpy_model import numpy_model


def torch_steps(model: SpeechModel, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GRU outputs, new state and log-probabilities (frames past the end as zeros) by the module."""
    with torch.inference_mode():
        out, new_hidden = model.rnn(model.proj(x), hidden)
        mixed = out if model.lookahead is None else model.mix_lookahead(torch.nn.functional.pad(out, (0, 0, 0, model.config.lookahead)))
        return out, new_hidden, model.head(mixed).log_softmax(dim=-1)


@pytest.mark.parametrize("lookahead, half, input_lookahead", [(0, False, 0), (3, False, 0), (3, True, 0), (3, False, 2)])
def test_numpy_steps_match_the_module(lookahead, half, input_lookahead):
    """With float16 weights (a half-precision file) the products take float16-weight kernels.
    An input look-ahead widens the projection's input (its frames come from ``with_future``)."""
    torch.manual_seed(2)
    model = SpeechModel(ModelConfig(n_hidden=32, n_proj=24, n_layers=3, bidirectional=False, lookahead=lookahead, input_lookahead=input_lookahead)).eval()
    with torch.no_grad():  # a look-ahead that is not the identity it starts as
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
            if half:
                p.copy_(p.half().float())
    n_in = model.config.frontend.n_features * model.config.frame_stack * (input_lookahead + 1)
    x, hidden = torch.randn(3, 7, n_in), torch.randn(3, 3, 32)
    expected_out, expected_hidden, expected_log_probs = torch_steps(model, x, hidden)
    steps = numpy_model(model)
    assert steps.half == half
    out, new_hidden = steps.rnn(x.numpy(), hidden.numpy())
    np.testing.assert_allclose(out, expected_out.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(new_hidden, expected_hidden.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(steps.head(out), expected_log_probs.numpy(), atol=1e-5, rtol=1e-5)
    empty, same_hidden = steps.rnn(x[:, :0].numpy(), hidden.numpy())
    assert empty.shape == (3, 0, 32) and steps.head(empty).shape == (3, 0, len(model.config.vocab))
    np.testing.assert_array_equal(same_hidden, hidden.numpy())
    assert numpy_model(model) is steps  # built once
    model.half_weight_kernels = False  # the float32 products on request
    assert not numpy_model(model).half


def test_numpy_steps_follow_changed_weights():
    torch.manual_seed(3)
    model = SpeechModel(ModelConfig(n_hidden=16, n_proj=16, n_layers=2, bidirectional=False, lookahead=2)).eval()
    n_in = model.config.frontend.n_features * model.config.frame_stack
    x, hidden = torch.randn(2, 4, n_in), torch.randn(2, 2, 16)
    numpy_model(model)
    with torch.no_grad():  # changed in place, then replaced: not the cached weights
        model.rnn.weight_hh_l1.mul_(-1.0)
        model.lookahead.weight.add_(0.5)
        model.rnn.bias_ih_l0 = torch.nn.Parameter(model.rnn.bias_ih_l0 + 1.0)
        model.head.weight = torch.nn.Parameter(model.head.weight * 2.0)
    _, expected_hidden, expected_log_probs = torch_steps(model, x, hidden)
    out, new_hidden = numpy_model(model).rnn(x.numpy(), hidden.numpy())
    np.testing.assert_allclose(new_hidden, expected_hidden.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(numpy_model(model).head(out), expected_log_probs.numpy(), atol=1e-5, rtol=1e-5)


def test_numpy_steps_only_where_they_apply():
    config = dict(n_hidden=8, n_proj=8, n_layers=1)
    assert numpy_model(SpeechModel(ModelConfig(**config, bidirectional=False)).train()) is None
    assert numpy_model(SpeechModel(ModelConfig(**config, bidirectional=True)).eval()) is None
    assert numpy_model(SpeechModel(ModelConfig(**config, bidirectional=False, rnn_type="lstm")).eval()) is None
    assert numpy_model(SpeechModel(ModelConfig(**config, bidirectional=False)).double().eval()) is None
