"""MACs of recurrent layers: every fused RNN kernel (LSTM on CPU, cuDNN on CUDA) is counted by
the per-step formula, and the recurrent students' totals are their RNN plus the rest."""

from __future__ import annotations

import pytest
import torch
from distill.students import profile
from torch import nn

from distill import students

RECURRENT_STUDENTS = ["lstm_p", "gru", "crnn", "att_rnn", "mhatt_rnn"]


def hand_macs(rnn: nn.RNNBase, rows: int) -> int:
    """Per step, layer and direction: gates * (input * H + P * H) + H * P with projections
    (P = H without), for `rows` (batch x time) steps."""
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    h = rnn.hidden_size
    p = rnn.proj_size or h
    directions = 2 if rnn.bidirectional else 1
    per_row = 0
    for layer in range(rnn.num_layers):
        inputs = rnn.input_size if layer == 0 else directions * p
        per_row += directions * (gates * (inputs * h + p * h) + (h * p if rnn.proj_size else 0))
    return rows * per_row


def test_hand_count_of_a_tiny_lstm() -> None:
    # 2 clips x 7 steps, 4 gates * (3 inputs * 5 + 5 * 5) = 160 MACs a step
    assert students.count_macs(nn.LSTM(3, 5, batch_first=True), (2, 7, 3)) == 2 * 7 * 160


RNNS = {
    "lstm": lambda: nn.LSTM(3, 5, batch_first=True),
    "lstm_2_layers_bidirectional": lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True),
    "lstm_projected": lambda: nn.LSTM(3, 5, proj_size=2, batch_first=True),
    "lstm_projected_bidirectional": lambda: nn.LSTM(3, 5, 2, proj_size=2, bidirectional=True),
    "gru": lambda: nn.GRU(3, 5, batch_first=True),
    "gru_2_layers_bidirectional": lambda: nn.GRU(3, 5, num_layers=2, bidirectional=True),
    "rnn_tanh": lambda: nn.RNN(3, 5),
    "rnn_relu_2_layers": lambda: nn.RNN(3, 5, num_layers=2, nonlinearity="relu"),
}


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("mkldnn", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name", sorted(RNNS))
def test_every_rnn_counts_its_hand_formula_on_cpu(name: str, mkldnn: bool) -> None:
    rnn = RNNS[name]()
    shape = (2, 7, 3)  # (B, T, I) batch-first, else (T, B, I): 14 rows either way
    with torch.backends.mkldnn.flags(enabled=mkldnn):  # fused kernel or torch's own matmuls
        assert students.count_macs(rnn, shape) == hand_macs(rnn, 14) > 0


@pytest.mark.parametrize("name", sorted(RNNS))
def test_cudnn_formula_reads_the_weights_the_module_passes(name: str) -> None:
    rnn = RNNS[name]()
    # nn.RNNBase hands its `_flat_weights` to aten._cudnn_rnn: the same formula must count them
    shapes = [tuple(w.shape) for w in rnn._flat_weights]
    assert profile._cudnn_rnn_flops((7, 2, 3), shapes) // 2 == hand_macs(rnn, 14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (cuDNN RNN kernels)")
@pytest.mark.parametrize("name", sorted(RNNS))
def test_every_rnn_counts_its_hand_formula_on_cuda(name: str) -> None:
    rnn = RNNS[name]().cuda()
    assert students.count_macs(rnn, (2, 7, 3)) == hand_macs(rnn, 14)


class _Replay(nn.Module):
    """Returns what the RNN it stands in for returned, at no counted cost."""

    def __init__(self, output: object) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args: object) -> object:
        return self.output


@pytest.mark.parametrize("name", RECURRENT_STUDENTS)
def test_recurrent_students_count_their_rnn(name: str) -> None:
    n_features, frames = students.spec(name).paper_input
    model = students.create(name, num_classes=12, n_features=n_features).eval()
    shape = (1, n_features, frames)
    rnn = next(m for m in model.modules() if isinstance(m, nn.RNNBase))
    seen = {}
    handle = rnn.register_forward_hook(
        lambda m, inputs, output: seen.update(rows=inputs[0].shape[:-1].numel(), output=output)
    )
    total = students.count_macs(model, shape)
    handle.remove()
    rnn_macs = hand_macs(rnn, seen["rows"])
    for parent in model.modules():  # the same model with its RNN costing nothing
        for child_name, child in parent.named_children():
            if child is rnn:
                setattr(parent, child_name, _Replay(seen["output"]))
    rest = students.count_macs(model, shape)
    assert rnn_macs > 0 and rest > 0
    assert total == rest + rnn_macs
