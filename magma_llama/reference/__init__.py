"""The float reference: llama2.c's run.c in numpy float32, token for token."""
