"""File formats: llama2.c checkpoints and tokenizers, and synthetic ones for tests."""
