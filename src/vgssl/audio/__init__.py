"""vgssl's one audio core: the frame convention, audio files, padded batches and log-mel/MFCC features.

`frames` defines once how every model, baseline, item file and evaluation counts and places frames (16 kHz,
50 Hz, 400-sample windows, hop 320, frame i at 0.01 + 0.02·i s); `io` reads and writes mono audio at that
rate; `batch` right-pads variable-length waveforms into the (B, N) + padding-mask layout the models read;
`features` holds the single log-mel implementation that both the model's fbank front-end and the MFCC and
fbank baselines use. `frames` and `io` do not import torch; `batch` and `features` do.
"""
