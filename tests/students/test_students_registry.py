"""Student registry: names, aliases, custom students by dotted path, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distill.students import FeatureTap, UnknownStudentError

from distill import students

HERE = Path(__file__).parent

REQUIRED = {
    "tc_resnet8",
    "tc_resnet8_w15",
    "tc_resnet14",
    "tc_resnet14_w15",
    "bc_resnet1",
    "bc_resnet1_5",
    "bc_resnet2",
    "bc_resnet3",
    "bc_resnet6",
    "bc_resnet8",
    "lstm_p",
    "crnn",
    "gru",
    "att_rnn",
    "mhatt_rnn",
    "ds_cnn_s",
    "ds_cnn_m",
    "ds_cnn_l",
    "mobilenetv3_small",
    "mobilenetv3_large",
}


def test_available_is_sorted_and_complete() -> None:
    names = students.available()
    assert names == sorted(names)
    assert set(names) >= REQUIRED
    for name in names:
        spec = students.spec(name)
        assert spec.default_tap and spec.tap_layout, name


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("tc_resnet8_1.5", "tc_resnet8_w15"),
        ("tc_resnet14_1.5", "tc_resnet14_w15"),
        ("bc_resnet1.5", "bc_resnet1_5"),
        ("att_mh_rnn", "mhatt_rnn"),
        ("lstm_peep", "lstm_p"),
    ],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert students.spec(alias).name == canonical
    a = students.create(alias, num_classes=12)
    b = students.create(canonical, num_classes=12)
    assert students.count_params(a) == students.count_params(b)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownStudentError) as info:
        students.create("tc_resnet9", num_classes=12)
    message = str(info.value)
    assert "'tc_resnet9'" in message
    assert "Did you mean: " in message and "tc_resnet8" in message
    assert "Available students: " in message and "mobilenetv3_small" in message


def test_unknown_dotted_path_says_why() -> None:
    with pytest.raises(UnknownStudentError, match="no_such_pkg_xyz"):
        students.create("no_such_pkg_xyz.Net", num_classes=2)
    with pytest.raises(UnknownStudentError, match="has no attribute 'Missing'"):
        students.create("custom_student.Missing", num_classes=2)
    with pytest.raises(UnknownStudentError, match="not callable"):
        students.create("custom_student.NOT_A_MODEL", num_classes=2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        students.create("tc_resnet8", num_classes=0)
    with pytest.raises(ValueError, match="n_features"):
        students.create("tc_resnet8", num_classes=2, n_features=0)


def test_custom_student_by_dotted_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    spec = students.spec("custom_student.TinyNet")
    assert spec.default_tap is None and spec.tap_layout is None
    assert spec.attention_tap is None and spec.paper_input is None
    model = students.create("custom_student.TinyNet", num_classes=3, n_features=16, width=5)
    lengths = []
    with FeatureTap(model, "encoder.1", "BCT") as tap:
        for frames in (101, 801):
            assert model(torch.randn(2, 16, frames)).shape == (2, 3)
            feats = tap.features()
            assert feats.shape[::2] == (2, 5)
            lengths.append(feats.shape[1])
    assert lengths == [51, 401]


def test_register_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        students.register_student("tc_resnet8", default_tap="x", tap_layout="BTC")(
            lambda **kw: None
        )


def test_factory_must_return_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    with pytest.raises(TypeError, match="not an nn.Module"):
        students.create("builtins.dict", num_classes=2)
