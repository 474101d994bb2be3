"""Real corpora in: `vgssl prepare` reads published layouts from local directories, writes the study layout.

Each source (LibriSpeech, MLS, SpokenCOCO, forced alignments) has one reader module and one command module;
they write manifests, caption JSON and item files in the layout `vgssl synth` writes (README), pointing at
the original audio (nothing is copied), and record themselves in the prepared corpus's card
(`vgssl.prepare.card`). Several commands may write into one corpus.
"""
