"""statsite: records what LLM products do and answers every statistics and log question about it."""

__version__ = "0.1.0"
