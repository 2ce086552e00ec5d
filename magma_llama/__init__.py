"""magma-llama: a LLaMA-2 decoder described as hardware in Magma, verified against numpy models."""

__version__ = "0.1.0"
