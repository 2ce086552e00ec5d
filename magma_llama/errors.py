"""Typed errors. The CLI turns every one of them into a single `error:` line and exit 2."""


class MagmaLlamaError(Exception):
    """Base class: anything the user can cause (bad file, bad flag, bad prompt)."""


class UsageError(MagmaLlamaError):
    """A command-line value outside what we accept (run.c would silently replace it)."""


class CheckpointError(MagmaLlamaError):
    """A llama2.c checkpoint that cannot be trusted."""


class CheckpointHeaderError(CheckpointError):
    """The 7-int header describes an impossible or unsupported model."""


class CheckpointSizeError(CheckpointError):
    """The file is shorter or longer than its header implies."""


class NonFiniteWeightError(CheckpointError):
    """A weight is NaN or Inf."""


class TokenizerError(MagmaLlamaError):
    """A tokenizer.bin that cannot be read, or does not fit the model."""


class VocabMismatchError(TokenizerError):
    """Tokenizer and model disagree on the vocabulary size."""


class TokenRangeError(MagmaLlamaError):
    """A token id outside [0, vocab_size)."""


class PromptTooLongError(MagmaLlamaError):
    """The prompt needs more positions than the model's seq_len."""


class ChecksumError(MagmaLlamaError):
    """A file named as a published llama2.c file whose bytes are not that file's."""


class DownloadError(MagmaLlamaError):
    """A download that failed, or arrived corrupted and was refused."""
