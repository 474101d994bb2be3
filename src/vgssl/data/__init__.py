"""Readers and writers of the data formats that real corpora and the built-in synthetic corpus share.

* `manifest`: fairseq-style audio manifests (`.tsv`).
* `captions`: SpokenCOCO-style caption JSON (images with spoken captions).
* `images`: the images of a caption set, as pixels or as precomputed image features.
* `alignments`: phone and word alignments, in memory and as JSON / JSONL.
* `items`: ZeroSpeech-style ABX item files.

Audio file I/O is `vgssl.audio.io`; building the synthetic corpus is `vgssl.corpus`.
"""
