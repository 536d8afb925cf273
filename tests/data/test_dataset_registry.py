"""The data set registry behind `data.name`: built-ins, custom sets by dotted path or by
registration in a test-local module, and one-line errors for unknown names."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from distill.config.schema import DataConfig
from distill.data import build_datamodule
from distill.data.noisy import NoisySpeechCommands
from distill.data.registry import available, register_dataset, spec
from distill.data.speech_commands import SpeechCommands
from distill.errors import BadValueError

from .fakes import make_synth_kws_bank

BUILT_IN = ["folder", "fsd50k", "noisy_speech_commands", "speech_commands", "synth_events"]
CUSTOM = "tests.data.custom_dataset"


def data_cfg(**kw) -> DataConfig:
    return OmegaConf.merge(OmegaConf.structured(DataConfig), kw)


def test_built_ins_are_registered_with_their_rules() -> None:
    names = available()
    assert set([*BUILT_IN, "synth_kws"]) <= set(names) and names == sorted(names)
    for name in ("speech_commands", "noisy_speech_commands", "synth_kws"):
        assert spec(name).task == "single_label" and spec(name).classes_from is None
    for name in ("fsd50k", "synth_events"):
        assert spec(name).task == "multi_label" and spec(name).classes_from == "vocabulary.csv"
    assert spec("folder").task is None and spec("folder").class_names is None


def test_unknown_name_is_one_line_naming_the_registered_ones() -> None:
    with pytest.raises(BadValueError) as err:
        build_datamodule(data_cfg(name="speech_comands", root="/unused"))
    message = str(err.value)
    assert "\n" not in message
    assert "data.name 'speech_comands'" in message
    assert "Did you mean: speech_commands" in message
    assert all(name in message for name in BUILT_IN)
    with pytest.raises(BadValueError, match="importing module 'no_such_pkg' failed"):
        spec("no_such_pkg.build")
    with pytest.raises(BadValueError, match=f"module '{CUSTOM}' has no callable 'nope'"):
        spec(f"{CUSTOM}.nope")


def test_builders_give_the_classes_and_arguments_of_before(tmp_path) -> None:
    root = tmp_path / "bank"
    make_synth_kws_bank(root, ["yes", "no", "up", "cat"], ["s1", "s2", "s3", "s4"])
    common = dict(sample_rate=16000, clip_seconds=2.0, seed=3, train_variants=2)
    cfg = dict(root=str(root), classes="yes,no,_unknown_", clip_seconds=2.0, seed=3,
               train_variants=2, snr_db=[0.0, 10.0], unknown_ratio=0.5)  # fmt: skip
    expected = {
        "synth_kws": NoisySpeechCommands(
            root, "validation", classes="yes,no,_unknown_", snr_db=[0.0, 10.0],
            require_manifest=True, unknown_ratio=0.5, **common,
        ),
        "noisy_speech_commands": NoisySpeechCommands(
            root, "validation", classes="yes,no,_unknown_", snr_db=[0.0, 10.0],
            require_manifest=False, unknown_ratio=0.5, **common,
        ),
        "speech_commands": SpeechCommands(
            root, "validation", classes="yes,no,_unknown_", crop="center", unknown_ratio=0.5,
            **common,
        ),
    }  # fmt: skip
    for name, direct in expected.items():
        dm = build_datamodule(data_cfg(name=name, **cfg))
        assert dm.class_names == ["yes", "no", "_unknown_"]
        got = dm.dataset("validation")
        assert type(got) is type(direct) and len(got) == len(direct) > 0
        for i in range(len(direct)):
            a, b = got[i], direct[i]
            assert a["clip_id"] == b["clip_id"]
            torch.testing.assert_close(a["waveform"], b["waveform"], rtol=0, atol=0)


def test_custom_builder_by_dotted_path_needs_no_registration() -> None:
    dm = build_datamodule(
        data_cfg(name=f"{CUSTOM}.build_tones", root="unused", classes="all", batch_size=4)
    )
    assert dm.class_names == ["low", "mid", "high"]  # read from the training split
    batch = next(iter(dm.dataloader("train", shuffle=True)))
    assert batch["waveform"].shape == (4, 16000) and set(batch["label"].tolist()) <= {0, 1, 2}
    assert len(dm.dataset("test")) == 12
    multi = build_datamodule(
        data_cfg(name=f"{CUSTOM}.build_tones", root="unused", task="multi_label")
    )
    assert multi.task == "multi_label"  # no declared task: data.task decides


def test_custom_set_registered_in_a_test_module_by_name() -> None:
    from tests.data import custom_dataset  # noqa: F401  (registers test_tones)

    assert "test_tones" in available()
    dm = build_datamodule(data_cfg(name="test_tones", root="unused", clip_seconds=0.5))
    assert dm.class_names == ["low", "mid", "high"] and dm.num_classes == 3
    assert len(dm.dataset("val")) == 6
    assert dm.dataset("val")[0]["waveform"].shape == (8000,)
    by_path = build_datamodule(data_cfg(name=f"{CUSTOM}.build_registered_tones", root="unused"))
    assert by_path.data_spec is spec("test_tones")  # its own registration, task included
    with pytest.raises(BadValueError, match="data.task must be single_label for test_tones"):
        build_datamodule(data_cfg(name="test_tones", root="unused", task="multi_label"))
    with pytest.raises(BadValueError, match="'test_tones' is already registered"):
        register_dataset("test_tones")(custom_dataset.build_tones)


def test_a_builder_that_returns_no_clip_dataset_is_refused() -> None:
    dm = build_datamodule(data_cfg(name=f"{CUSTOM}.build_not_a_dataset", root="unused"))
    with pytest.raises(BadValueError, match="built a list for split 'train', not a"):
        dm.dataset("train")
