"""longctx: make long-context language models better at in-context retrieval, and measure them.

The library is organised by the parts of the study: ``data`` (examples, readers, contexts),
``models`` (loading and generation), ``eval`` (prompts, scorers, the evaluation loop), and later
``retrieval``, ``compress``, ``train``, ``analysis`` and ``report``.
"""

__version__ = "0.1.0"
