"""Waveform augmentation: resampling and speed perturbation, additive noise,
reverberation, and the noise / RIR sets they draw from."""
