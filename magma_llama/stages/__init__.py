"""Datapath stages of the decoder."""
