"""`vgssl export-hf CKPT OUT`: write a trained conv-front-end model as a transformers Wav2Vec2Model."""

from __future__ import annotations

import argparse

HELP = "export a trained model (conv front-end) as a transformers Wav2Vec2Model directory"
DESCRIPTION = (
    HELP + ". CKPT is a checkpoint file or a run directory (its best checkpoint, else its last). The "
    "result loads with transformers' Wav2Vec2Model.from_pretrained(OUT) and gives the same hidden states. "
    "Models with the fbank front-end cannot be exported: transformers has no log-mel front-end for "
    "wav2vec 2.0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint .pt file or run directory")
    parser.add_argument("out", metavar="OUT", help="output directory (must not exist or be empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vgssl.errors import OutputExistsError
    from vgssl.model.hf import export_to_hf
    from vgssl.model.pretrained import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory; choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise OutputExistsError(f"{out} is not empty; pass --overwrite to replace it or choose another OUT")
    model = load_model(args.checkpoint)
    export_to_hf(model, out)
    print(f"wrote a transformers Wav2Vec2Model to {out}")
    return 0
