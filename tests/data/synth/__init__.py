"""Tests of distill.data.synth: the synthetic keyword and sound-event sets, TTS, SoundFonts."""
