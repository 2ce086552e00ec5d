"""magma-llama: a LLaMA-2 decoder described as hardware in Magma, verified against numpy models."""

__version__ = "0.1.0"

import warnings

# ast_tools (a magma dependency) warns at import that its generated file targets Python 3.9;
# it works on 3.11, and the warning would otherwise precede every command's output.
warnings.filterwarnings("ignore", message=r".*immutable_ast\.py generated for", category=UserWarning)
