"""transformers interop: the export equals our hidden states, init_from_hf inverts it, `vgssl export-hf`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vgssl.atomic import atomic_torch_save  # noqa: E402
from vgssl.cli import main  # noqa: E402
from vgssl.model.config import ModelConfig  # noqa: E402
from vgssl.model.hf import (  # noqa: E402
    FbankNotExportableError,
    HFCheckpointMismatchError,
    export_to_hf,
    hf_config_for,
    model_config_from_hf,
)
from vgssl.model.pretrained import CHECKPOINT_FORMAT, init_from_hf  # noqa: E402
from vgssl.model.wav2vec2 import Wav2Vec2  # noqa: E402

TINY = {
    "frontend": "conv",
    "dim": 32,
    "layers": 2,
    "heads": 2,
    "ffn_dim": 64,
    "pos_conv_kernel": 16,
    "pos_conv_groups": 4,
    "conv_layers": [(32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4)],
    "codebook_entries": 16,
    "codevector_dim": 32,
    "final_dim": 32,
}


def tiny_model(seed: int = 0, **overrides: object) -> Wav2Vec2:
    torch.manual_seed(seed)
    model = Wav2Vec2(ModelConfig(**(TINY | overrides)))
    with torch.no_grad():  # move every LayerNorm and bias off its initial value so the mapping is exercised
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def hf_hidden_states(hf_dir: Path, wav: torch.Tensor) -> tuple[torch.Tensor, ...]:
    hf_model = transformers.Wav2Vec2Model.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        return hf_model(wav, output_hidden_states=True).hidden_states


@pytest.mark.parametrize(("norm_first", "conv_norm"), [(False, "group"), (True, "layer")])
def test_export_gives_transformers_the_same_hidden_states(
    tmp_path: Path, norm_first: bool, conv_norm: str
) -> None:
    model = tiny_model(norm_first=norm_first, conv_norm=conv_norm, conv_bias=conv_norm == "layer")
    wav = torch.randn(2, 12_000)
    export_to_hf(model, tmp_path / "hf")
    theirs = hf_hidden_states(tmp_path / "hf", wav)
    ours, _ = model.encode(wav)
    other, _ = tiny_model(seed=1, norm_first=norm_first, conv_norm=conv_norm).encode(wav)
    assert len(theirs) == len(ours) == 3
    for their_state, our_state, other_state in zip(theirs, ours, other, strict=True):
        assert torch.allclose(their_state, our_state, atol=1e-5)
        assert not torch.allclose(their_state, other_state, atol=1e-2)  # the comparison can fail

    fresh = tiny_model(seed=2, norm_first=norm_first, conv_norm=conv_norm, conv_bias=conv_norm == "layer")
    init_from_hf(fresh, tmp_path / "hf")
    for restored, original in zip(fresh.encode(wav)[0], ours, strict=True):
        assert torch.allclose(restored, original, atol=1e-6)


def test_init_from_a_pretraining_checkpoint_also_loads_the_quantizer(tmp_path: Path) -> None:
    config = ModelConfig(**TINY)
    torch.manual_seed(3)
    reference = transformers.Wav2Vec2ForPreTraining(hf_config_for(config)).eval()
    reference.save_pretrained(tmp_path / "pretraining")
    model = tiny_model()
    init_from_hf(model, tmp_path / "pretraining")
    codevectors = reference.quantizer.codevectors.detach().reshape(2, 16, 16)
    assert torch.equal(model.quantizer.codebook.detach(), codevectors)
    assert torch.equal(model.project_context.weight.detach(), reference.project_hid.weight.detach())
    wav = torch.randn(1, 8_000)
    with torch.no_grad():
        theirs = reference.wav2vec2(wav, output_hidden_states=True).hidden_states
    for their_state, our_state in zip(theirs, model.encode(wav)[0], strict=True):
        assert torch.allclose(their_state, our_state, atol=1e-5)
    assert model_config_from_hf(tmp_path / "pretraining") == config


def test_init_from_hf_names_the_fields_that_differ(tmp_path: Path) -> None:
    export_to_hf(tiny_model(), tmp_path / "hf")
    with pytest.raises(HFCheckpointMismatchError, match="num_hidden_layers: checkpoint 2, model 3"):
        init_from_hf(tiny_model(layers=3), tmp_path / "hf")


def test_fbank_models_cannot_be_exported(tmp_path: Path) -> None:
    with pytest.raises(FbankNotExportableError, match="log-mel"):
        export_to_hf(tiny_model(frontend="fbank"), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_export_command_refuses_a_non_empty_output_unless_overwrite(tmp_path: Path, capsys) -> None:
    model = tiny_model()
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    atomic_torch_save(
        {"format": CHECKPOINT_FORMAT, "model_config": model.config.model_dump(), "model": model.state_dict()},
        checkpoint,
    )
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    assert main(["export-hf", str(tmp_path / "run"), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "old.txt").exists()

    assert main(["export-hf", str(tmp_path / "run"), str(out), "--overwrite"]) == 0
    assert not (out / "old.txt").exists()
    wav = torch.randn(1, 8_000)
    for their_state, our_state in zip(hf_hidden_states(out, wav), model.eval().encode(wav)[0], strict=True):
        assert torch.allclose(their_state, our_state, atol=1e-5)


def test_waveform_normalisation_travels_both_ways_through_do_normalize(tmp_path: Path) -> None:
    model = tiny_model(normalize_waveform=True)
    export_to_hf(model, tmp_path / "hf")
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "hf")
    assert extractor.do_normalize is True
    wav = 3.0 * torch.randn(12_000) + 0.2
    inputs = extractor(wav.numpy(), sampling_rate=16_000, return_tensors="pt")
    theirs = hf_hidden_states(tmp_path / "hf", inputs["input_values"])
    ours, _ = model.encode(wav.unsqueeze(0))  # our model normalises the raw waveform itself
    for their_state, our_state in zip(theirs, ours, strict=True):
        assert torch.allclose(their_state, our_state, atol=1e-4)
    assert model_config_from_hf(tmp_path / "hf").normalize_waveform is True
    with pytest.raises(HFCheckpointMismatchError, match="do_normalize"):
        init_from_hf(tiny_model(normalize_waveform=False), tmp_path / "hf")


def test_models_without_the_feature_layer_norm_cannot_be_exported(tmp_path: Path) -> None:
    with pytest.raises(FbankNotExportableError, match="feature_layer_norm"):
        export_to_hf(tiny_model(feature_layer_norm=False), tmp_path / "hf")
