"""Acoustic features: Kaldi fbank (kaldifeat or kaldi-native-fbank), mean
normalisation, SpecAugment and voice activity detection."""
