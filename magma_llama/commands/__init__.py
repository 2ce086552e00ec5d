"""Subcommands with enough code to deserve a module; each exposes `register(subparsers)`.

Use `magma_llama.cli` helpers (`add_run_args`, `run_generation`, `load_model_and_tokenizer`)
so every command keeps the CLI contract: one `error:` line and exit 2 on bad input.
"""
