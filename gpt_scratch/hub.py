"""Publish a model on the Hugging Face Hub so that anyone can load it with the Auto classes, in one commit.

`push_to_hub` writes everything into one temporary staging folder: the weights (safetensors, sharded or not),
config.json with its `auto_map`, the configuration and modeling code (the remote code `trust_remote_code=True`
runs), generation_config.json, the tokenizer files and README.md, a model card rendered from the `model_card.md`
template. It checks what it staged (weights against the config, tokenizer against the vocabulary, the card's
metadata locally and with the Hub's validator), then creates the repo and sends the folder as a single
`HfApi.create_commit`: the commit lands whole or not at all.

`HfApi.upload_folder` is not used: with `hf_xet` installed (the default) it streams through a pipeline that
commits large folders in batches and, when a commit of more than 20 files fails, retries it as several smaller
commits, so a failure can leave part of a model published. `create_commit` is the call `upload_folder` makes
without `hf_xet`: the same preupload (Xet or LFS for large files, with the client's progress bars), one commit.
"""

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData, constants
from huggingface_hub import get_token as get_saved_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import tqdm, validate_repo_id
from safetensors import safe_open
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from .checkpoint import safetensors_problem
from .configuration_gpt_scratch import AUTO_MAP, PRESET_NAMES, TRANSFORMERS_REQUIREMENT, GPTScratchConfig
from .modeling_gpt_scratch import GPTScratchForCausalLM, GPTScratchModel
from .network import HubTimeouts, hub_timeouts, resolve_timeouts
from .tokenization_gpt_scratch import load_tokenizer

try:  # the HTTP client under huggingface_hub: httpx2 from 2.0, httpx in 1.x
    from httpx2 import RequestError as _ConnectionFailure
    from httpx2 import TimeoutException as _Timeout
except ImportError:  # huggingface_hub 1.x
    from httpx import RequestError as _ConnectionFailure
    from httpx import TimeoutException as _Timeout

__all__ = ["HubPushError", "push_to_hub", "render_model_card"]

logger = logging.getLogger(__name__)

CODE_FILES = ("configuration_gpt_scratch.py", "modeling_gpt_scratch.py")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_ARCHITECTURES = {cls.__name__: cls for cls in (GPTScratchForCausalLM, GPTScratchModel)}
# The template: package data in an installed wheel, the repository root in a source checkout.
_TEMPLATE_CANDIDATES = (
    Path(__file__).with_name("model_card.md"),
    Path(__file__).resolve().parents[1] / "model_card.md",
)
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_DEFAULT_LICENSE = "apache-2.0"  # the license of the code files published beside the weights
_LIST_FIELDS = ("base_model", "datasets", "language", "metrics", "tags")  # a string or a list of strings
_REPO_ID_FIELDS = ("base_model", "datasets")
_EVAL_RESULT_FIELDS = "task_type, dataset_type, dataset_name, metric_type, metric_value, optional EvalResult fields"


class HubPushError(RuntimeError):
    """A push that did not complete: no token, or the Hub refused a request or could not be reached.

    `status_code` is the HTTP status (None when no answer came back) and `endpoint` the URL asked, without its
    query. The message never contains the token.
    """

    def __init__(self, message: str, *, status_code: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.endpoint = endpoint


def push_to_hub(
    model_or_folder: GPTScratchForCausalLM | GPTScratchModel | str | os.PathLike,
    repo_id: str,
    *,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    private: bool = False,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    card_data: Mapping[str, Any] | ModelCardData | None = None,
    timeout: float | tuple[float, float] | HubTimeouts | None = None,
) -> CommitInfo:
    """Publish a model, its code, its tokenizer and a model card to `repo_id` on the Hub in one commit.

    Afterwards `AutoModelForCausalLM.from_pretrained(repo_id, trust_remote_code=True)` and
    `AutoTokenizer.from_pretrained(repo_id)` load it where gpt_scratch is not installed.

    Args:
        model_or_folder: a `GPTScratchForCausalLM`/`GPTScratchModel`, or a folder written by `save_pretrained`
            (config.json with model_type "gpt_scratch", model.safetensors or shards with their index). Code files
            missing from the folder are added from the installed gpt_scratch; other files (optimizer states,
            pytorch_model.bin, a README.md) are not published.
        repo_id: "namespace/name", or "name" for the token's own account.
        tokenizer: a transformers tokenizer, or a folder of tokenizer files. None: the folder's own tokenizer files
            if it has them, else GPT-2's (`load_tokenizer(model_max_length=config.context_length)`).
        private: create the repo private (ignored if it exists).
        token: a Hub token with write access; None (or True) reads HF_TOKEN, then the saved login (`hf auth login`).
        revision: the branch to commit to, created from main if missing; None commits to main.
        commit_message: defaults to "Upload <class> (<parameters> parameters) with gpt_scratch".
        create_pr: open a pull request against main with the commit instead of committing to main.
        card_data: extra model card metadata, a dict or `ModelCardData`: `license` (default "apache-2.0"),
            `datasets`, `base_model` (else taken from `config.name_or_path` when the model was loaded from a Hub
            repo), `language`, `tags` (added to "gpt_scratch" and "gpt2"), `eval_results` (`EvalResult`s or
            dicts of their fields, written as the card's model-index and an evaluation table), `model_name`, any
            other Hub metadata key; and `training_results`, a dict of name -> value shown as the card's training
            table (not metadata; by default, for a folder that `gpt-scratch train` wrote, the run's from its
            metrics.json).
        timeout: seconds to wait for a connection and for each answer from the Hub: a number for both, or
            (connect, read). None: GPT_SCRATCH_HUB_CONNECT_TIMEOUT / GPT_SCRATCH_HUB_READ_TIMEOUT, else 10 and 60
            (`gpt_scratch.network`). A Hub that does not answer in time is a HubPushError naming the endpoint.

    Returns:
        huggingface_hub's `CommitInfo` (`commit_url`, `oid`, `repo_url`, `pr_url`).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a bad repo id, revision or commit message, a folder that is not a gpt_scratch model, weights
            that do not fit the config, a tokenizer larger than the vocabulary, or card metadata that fails the
            local checks or the Hub's validator (nothing is created then).
        FileNotFoundError: a missing folder, config.json or weights file.
        HubPushError: no token, or a Hub request that failed or timed out (the message names the status and the
            endpoint); every failure before the commit, Ctrl-C included, leaves the repo's files as they were.
    """
    _check_arguments(repo_id, private=private, revision=revision, commit_message=commit_message,
                     create_pr=create_pr, card_data=card_data)
    timeouts = resolve_timeouts(timeout)
    extras = _parse_card_data(card_data)
    template = _template()
    token = _resolve_token(token)
    if constants.is_offline_mode():
        raise HubPushError("HF_HUB_OFFLINE is set: huggingface_hub makes no requests, so nothing can be pushed")
    import gpt_scratch

    api = HfApi(token=token, library_name="gpt_scratch", library_version=gpt_scratch.__version__)
    with tempfile.TemporaryDirectory(prefix="gpt_scratch-push-") as tmp, hub_timeouts(timeouts):
        staging = Path(tmp)
        source = _stage_model(model_or_folder, staging)
        _stage_tokenizer(tokenizer, source, staging)
        parameters, dtypes = _describe_weights(staging, source)
        if not extras.training_results:  # a folder `gpt-scratch train` wrote keeps its training table
            extras.training_results = _run_metrics_rows(source.folder)

        with _hub_errors("looking up the account of the token", token):
            full_repo_id = repo_id if "/" in repo_id else f"{api.whoami()['name']}/{repo_id}"
        card = _render_card(full_repo_id, source, parameters, dtypes, extras, template=template,
                            version=gpt_scratch.__version__)
        if token in card.content:
            raise ValueError("card_data contains the Hub token: remove it, the model card is public")
        card.save(staging / "README.md")
        with _hub_errors("validating the model card's metadata", token):
            try:
                card.validate()
            except ValueError as err:  # the Hub's validator answered 400: its JSON lists the problems
                raise ValueError(f"the model card's metadata failed the Hub's validation: {err}") from None

        with _hub_errors(f"creating {full_repo_id}", token):
            api.create_repo(full_repo_id, private=private, exist_ok=True)
        if revision not in (None, "main") and not create_pr and not revision.startswith("refs/pr/"):
            with _hub_errors(f"creating branch {revision!r} of {full_repo_id}", token):
                api.create_branch(full_repo_id, branch=revision, exist_ok=True)

        files = sorted(path for path in staging.iterdir() if path.is_file())
        operations = [CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=path) for path in files]
        message = commit_message or f"Upload {source.architecture} ({parameters:,} parameters) with gpt_scratch"
        target = "a pull request" if create_pr else f"{full_repo_id}@{revision or 'main'}"
        logger.info("Uploading %d files (%s) to %s in one commit", len(files), _size(files), target)
        with _hub_errors(f"committing to {target}", token, lost_answer=True):
            info = api.create_commit(full_repo_id, operations=operations, commit_message=message,
                                     revision=None if create_pr else revision, create_pr=create_pr)
    logger.info("Published %s: %s", full_repo_id, info.pr_url or info.commit_url)
    return info


# ----- arguments and token --------------------------------------------------------------------------------


def _check_arguments(repo_id: Any, *, private: Any, revision: Any, commit_message: Any, create_pr: Any,
                     card_data: Any) -> None:
    """Everything that can be checked before any work: types, the repo id, conflicting options."""
    if not isinstance(repo_id, str):
        raise TypeError(f"repo_id must be a string like 'namespace/name', got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"invalid repo_id {repo_id!r}: {err}") from None
    for name, value in (("private", private), ("create_pr", create_pr)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    for name, value in (("revision", revision), ("commit_message", commit_message)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be None or a non-empty string, got {value!r}")
    if create_pr and revision not in (None, "main"):
        raise ValueError(f"create_pr=True opens a pull request against main; it cannot go with revision={revision!r}")
    if card_data is not None and not isinstance(card_data, (Mapping, ModelCardData)):
        raise TypeError(f"card_data must be a dict or a huggingface_hub.ModelCardData, got {type(card_data).__name__}")


def _resolve_token(token: Any) -> str:
    """The token argument, else HF_TOKEN, else the saved login; a HubPushError before any request if none.

    `token=True` means the same as None, as in transformers' `push_to_hub`.
    """
    if token is False:
        raise ValueError("token=False turns authentication off, but pushing needs a token with write access")
    if token is not None and token is not True and not isinstance(token, str):
        raise TypeError(f"token must be a string, True or None, got {type(token).__name__}")
    token = (token if isinstance(token, str) else "").strip() or get_saved_token()
    if not token:
        raise HubPushError(
            "no Hugging Face token: pass token=..., set HF_TOKEN, or log in once with `hf auth login` "
            "(the token needs write access to the target namespace)"
        )
    return token


# ----- staging --------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """What was staged: the config, the model class, the folder it came from and the name it was loaded as."""

    config: GPTScratchConfig
    architecture: str
    folder: Path | None
    name_or_path: str


def _stage_model(model_or_folder: Any, staging: Path) -> _Source:
    """Weights, config.json, generation_config.json and the code files into `staging`."""
    if isinstance(model_or_folder, (GPTScratchForCausalLM, GPTScratchModel)):
        # save_pretrained copies the code files too: the model classes declare their `_auto_class`.
        model_or_folder.save_pretrained(staging)
        config = model_or_folder.config
        return _Source(config, type(model_or_folder).__name__, None, config.name_or_path or "")
    if isinstance(model_or_folder, (str, os.PathLike)):
        return _stage_folder(Path(model_or_folder), staging)
    raise TypeError(
        f"model_or_folder must be a GPTScratchForCausalLM, a GPTScratchModel or the path of a folder written by "
        f"save_pretrained, got {type(model_or_folder).__name__}"
    )


def _stage_folder(folder: Path, staging: Path) -> _Source:
    """Stage a saved gpt_scratch folder's model files, adding the code files and auto_map if they are missing."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no such model folder: {folder}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: expected a folder written by save_pretrained")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type != GPTScratchConfig.model_type:
        raise ValueError(
            f"{config_file} has model_type {model_type!r}, expected {GPTScratchConfig.model_type!r}: only gpt_scratch "
            f"folders are published (convert other checkpoints first, e.g. with `gpt-scratch convert`)"
        )
    config = GPTScratchConfig.from_pretrained(folder)  # validates every field
    architectures = raw.get("architectures") or ["GPTScratchForCausalLM"]
    if architectures[0] not in _ARCHITECTURES:
        raise ValueError(
            f"{config_file} names architecture {architectures[0]!r}; expected one of {', '.join(_ARCHITECTURES)}"
        )

    copies = [(path, staging / path.name) for path in _weight_files(folder)]
    auto_map = raw.get("auto_map") if isinstance(raw.get("auto_map"), dict) else {}
    if any(auto_map.get(key) != value for key, value in AUTO_MAP.items()):
        logger.info("%s: setting auto_map so that the Auto classes find the published code", config_file)
        raw["auto_map"] = {**auto_map, **AUTO_MAP}
        (staging / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        copies.append((config_file, staging / "config.json"))
    if (folder / "generation_config.json").is_file():
        copies.append((folder / "generation_config.json", staging / "generation_config.json"))
    else:
        GenerationConfig.from_model_config(config).save_pretrained(staging)
    package = Path(__file__).parent
    for name in CODE_FILES:
        if (folder / name).is_file():
            copies.append((folder / name, staging / name))
        else:
            logger.info("%s has no %s: publishing the installed gpt_scratch's", folder, name)
            copies.append((package / name, staging / name))
    _link_or_copy(copies, f"Staging {folder.name}")

    published = {source.name for source, _ in copies if source.parent == folder} | {"config.json", *TOKENIZER_FILES}
    left_out = sorted(path.name for path in folder.iterdir() if path.name not in published)
    if left_out:
        logger.warning("not published from %s (not part of a gpt_scratch model): %s", folder, ", ".join(left_out))
    return _Source(config, architectures[0], folder, "")


def _weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the index and every shard it names."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if not index.is_file():
        raise FileNotFoundError(
            f"{folder} has neither model.safetensors nor model.safetensors.index.json: only safetensors weights "
            f"are published (load the model and save_pretrained it to write them)"
        )
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{index} is not a safetensors index (a JSON object with a 'weight_map'): {err}") from None
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{index} names shards that are not in {folder}: {', '.join(missing)}")
    return [index, *(folder / name for name in shards)]


def _stage_tokenizer(tokenizer: Any, source: _Source, staging: Path) -> None:
    """The tokenizer files into `staging`, checked to fit the model's vocabulary."""
    if tokenizer is None and source.folder is not None and _has_tokenizer_files(source.folder):
        tokenizer = source.folder  # the folder's own tokenizer, as saved
    if tokenizer is None:
        tokenizer = load_tokenizer(model_max_length=source.config.context_length)
    if isinstance(tokenizer, (str, os.PathLike)):
        folder = Path(tokenizer)
        if not folder.is_dir() or not _has_tokenizer_files(folder):
            raise FileNotFoundError(
                f"tokenizer {folder} is not a folder with tokenizer files ({' or '.join(TOKENIZER_FILES[:2])})"
            )
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)
        tokenizer = AutoTokenizer.from_pretrained(staging)  # what users will load
    elif isinstance(tokenizer, PreTrainedTokenizerBase):
        tokenizer.save_pretrained(staging)
    else:
        raise TypeError(f"tokenizer must be a transformers tokenizer, a folder or None, got {type(tokenizer).__name__}")
    if len(tokenizer) > source.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {source.config.vocab_size}: "
            f"ids past {source.config.vocab_size - 1} would fail; publish the tokenizer the model was trained with"
        )


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES[:2])  # tokenizer.json, tokenizer_config.json


def _link_or_copy(copies: list[tuple[Path, Path]], description: str) -> None:
    """Hard-link each file into the staging folder, or copy it where that fails (another filesystem), under one
    byte-counting progress bar (off with HF_HUB_DISABLE_PROGRESS_BARS, as huggingface_hub's are).

    A link stages gigabytes of weights without writing them again, into a temporary folder that may be in RAM.
    """
    total = sum(source.stat().st_size for source, _ in copies)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description) as bar:
        for source, target in copies:
            try:
                os.link(source, target)  # follows a symlink (a Hub cache snapshot) to the file itself
                bar.update(target.stat().st_size)
                continue
            except FileExistsError:
                raise  # never write through an existing link into the user's file
            except OSError:
                pass
            with open(source, "rb") as reader, open(target, "wb") as writer:
                while chunk := reader.read(16 * 1024 * 1024):
                    writer.write(chunk)
                    bar.update(len(chunk))


def _describe_weights(staging: Path, source: _Source) -> tuple[int, list[str]]:
    """(parameter count, dtypes) of the staged safetensors, after checking them against the config.

    Reads only the headers. The count is exact: a tied output head is stored once, so counted once.

    Raises:
        ValueError: a truncated or unreadable file, a tensor shaped for another config, or a missing tensor.
    """
    with torch.device("meta"):
        model = _ARCHITECTURES[source.architecture](source.config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    for path in sorted(staging.glob("*.safetensors")):
        if (problem := safetensors_problem(path, expected)) is not None:
            raise ValueError(problem.replace(str(staging), str(source.folder or "the saved model")))
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():
                tensor = weights.get_slice(key)
                found[key] = (tuple(tensor.get_shape()), tensor.get_dtype())
    tied = {"lm_head.weight"} if source.config.tie_word_embeddings else set()
    missing = sorted(set(expected) - set(found) - tied)
    if missing:
        raise ValueError(
            f"the weights in {source.folder or 'the saved model'} lack {len(missing)} tensors the config needs, "
            f"e.g. {', '.join(missing[:3])}"
        )
    parameters = sum(math.prod(shape) for shape, _ in found.values())
    dtypes = sorted({_SAFETENSORS_DTYPES.get(dtype, dtype) for _, dtype in found.values()})
    return parameters, dtypes


def _size(files: list[Path]) -> str:
    return f"{sum(path.stat().st_size for path in files) / 2**20:,.1f} MiB"


# ----- the model card -------------------------------------------------------------------------------------


@dataclass
class _CardExtras:
    """The caller's card_data, checked: Hub metadata, and what only the card's text shows."""

    metadata: dict[str, Any]
    tags: list[str]
    training_results: list[tuple[str, str]]
    eval_results: list[EvalResult]
    model_name: str | None


def _parse_card_data(card_data: Mapping[str, Any] | ModelCardData | None) -> _CardExtras:
    """Check the caller's card_data before any work, so that a bad card fails before staging or any request.

    Raises:
        ValueError: metadata of the wrong shape; the message names the key.
    """
    extra = dict(vars(card_data) if isinstance(card_data, ModelCardData) else card_data or {})
    extra = {key: value for key, value in extra.items() if value is not None}
    for key in extra:
        if not isinstance(key, str):
            raise ValueError(f"card_data keys must be strings, got {key!r}")
    training_results = _training_rows(extra.pop("training_results", None))
    eval_results = _eval_results(extra.pop("eval_results", None))
    model_name = extra.pop("model_name", None)
    if extra.get("library_name", "transformers") != "transformers":
        raise ValueError(
            f"card_data['library_name'] must be 'transformers' (what loads this model), got {extra['library_name']!r}"
        )
    _check_metadata(extra)
    tags = [extra.pop("tags")] if isinstance(extra.get("tags"), str) else list(extra.pop("tags", []))
    try:  # what ModelCardData itself checks: a model-index passed as such, eval results with a model name
        ModelCardData(eval_results=eval_results or None, model_name=model_name or "model", **extra)
    except ValueError as err:
        raise ValueError(f"invalid card_data: {err}") from None
    return _CardExtras(extra, tags, training_results, eval_results, model_name)


def _render_card(repo_id: str, source: _Source, parameters: int, dtypes: list[str], extras: _CardExtras, *,
                 template: str, version: str) -> ModelCard:
    """The model card: the template filled from the model and the caller's checked card_data."""
    causal_lm = source.architecture == GPTScratchForCausalLM.__name__
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation" if causal_lm else "feature-extraction",
        "license": _DEFAULT_LICENSE,
        **extras.metadata,
    }
    if "base_model" not in metadata and (base_model := _base_model_hint(source.name_or_path, repo_id)):
        metadata["base_model"] = base_model
    model_name = extras.model_name or repo_id.split("/")[-1]
    card_data = ModelCardData(
        tags=["gpt_scratch", "gpt2", *extras.tags],
        eval_results=extras.eval_results or None,
        model_name=model_name if extras.eval_results else None,
        **metadata,
    )

    config = source.config
    presets = [name for name in PRESET_NAMES if _is_preset(config, name)]
    card = ModelCard.from_template(
        card_data,
        template_str=template,
        repo_id=repo_id,
        model_name=model_name,
        causal_lm=causal_lm,
        architecture=source.architecture,
        preset=f"{presets[0]} ({', '.join(presets[1:])})" if presets else "none (custom configuration)",
        parameters=f"{parameters:,}",
        dtype=", ".join(dtypes),
        config_rows=[(name, _cell(getattr(config, name))) for name in (
            "emb_dim", "n_layers", "n_heads", "context_length", "vocab_size", "qkv_bias", "tie_word_embeddings",
            "drop_rate", "layer_norm_eps")],
        base_model=_as_list(metadata.get("base_model")),
        datasets=_as_list(metadata.get("datasets")),
        training_results=extras.training_results,
        eval_results=[
            {"task": _cell(r.task_name or r.task_type), "dataset": _cell(r.dataset_name),
             "split": _cell(r.dataset_split), "metric": _cell(r.metric_name or r.metric_type),
             "value": _cell(r.metric_value)}
            for r in extras.eval_results
        ],
        version=version,
        transformers_requirement=TRANSFORMERS_REQUIREMENT,
    )
    return ModelCard(card.content)  # parsed back, as the Hub and ModelCard.load will read it


def render_model_card(folder: str | os.PathLike, name: str,
                      card_data: Mapping[str, Any] | ModelCardData | None = None) -> ModelCard:
    """The model card `push_to_hub` would publish for a saved gpt_scratch folder, rendered locally (no request).

    name: what the card's usage snippet loads, a repo id or a path. card_data: as `push_to_hub` takes it.

    Raises:
        ValueError: card_data of the wrong shape, or weights that do not fit the folder's config.
        FileNotFoundError: a missing config.json or model card template.
    """
    import gpt_scratch

    extras = _parse_card_data(card_data)
    folder = Path(folder)
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architecture = (raw.get("architectures") or [GPTScratchForCausalLM.__name__])[0]
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"{folder}/config.json names architecture {architecture!r}; expected one of "
                         f"{', '.join(_ARCHITECTURES)}")
    source = _Source(GPTScratchConfig.from_pretrained(folder), architecture, folder, "")
    parameters, dtypes = _describe_weights(folder, source)
    return _render_card(name, source, parameters, dtypes, extras, template=_template(), version=gpt_scratch.__version__)


def _template() -> str:
    """The model card template: the packaged copy in an install, the repository root's in a source checkout."""
    for path in _TEMPLATE_CANDIDATES:
        # A checkout without symlink support holds the link's target path as text: not a template, skip it.
        if path.is_file() and "{{ card_data }}" in (text := path.read_text(encoding="utf-8")):
            return text
    raise FileNotFoundError(
        f"the model card template model_card.md (with {{{{ card_data }}}} front matter) is missing; looked at "
        f"{', '.join(map(str, _TEMPLATE_CANDIDATES))}; reinstall gpt_scratch"
    )


def training_results_of_run(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's training table for a run of `gpt-scratch train`, from its `metrics.json` (the fields of
    `gpt_scratch.training.TrainingResult`)."""
    return {
        "training text": f"{Path(metrics['data']).name} ({metrics['data_tokens']:,} tokens, "
                         f"{metrics['train_tokens']:,} for training, {metrics['validation_tokens']:,} for validation)",
        "steps": metrics["steps"],
        "epochs": metrics["epochs"],
        "tokens seen": f"{metrics['tokens_seen']:,}",
        "context length, global batch": f"{metrics['context_length']}, {metrics['global_batch_size']}",
        "final training loss": round(metrics["train_loss"], 4),
        "final validation loss": round(metrics["validation_loss"], 4),
        "validation perplexity": round(metrics["validation_perplexity"], 2),
    }


def _run_metrics_rows(folder: Path | None) -> list[tuple[str, str]]:
    """The training table of a folder that `gpt-scratch train` wrote (its metrics.json), or none."""
    path = folder / "metrics.json" if folder is not None else None
    if path is None or not path.is_file():
        return []
    try:
        return _training_rows(training_results_of_run(json.loads(path.read_text(encoding="utf-8"))))
    except (ValueError, KeyError, TypeError) as err:
        logger.warning("%s is not the metrics.json of a gpt-scratch train run (%s): the card gets no training table",
                       path, err)
        return []


def _training_rows(results: Any) -> list[tuple[str, str]]:
    if results is None:
        return []
    if not isinstance(results, Mapping) or not all(
        isinstance(key, str) and isinstance(value, (str, int, float)) for key, value in results.items()
    ):
        raise ValueError(
            f"card_data['training_results'] must be a dict of name -> number or string, e.g. "
            f"{{'steps': 600, 'train_loss': 3.21}}, got {results!r}"
        )
    return [(_cell(key), _cell(value)) for key, value in results.items()]


def _eval_results(results: Any) -> list[EvalResult]:
    if results is None:
        return []
    items = [results] if isinstance(results, (EvalResult, Mapping)) else results
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"card_data['eval_results'] must be a list of EvalResult or dicts, got {results!r}")
    converted = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                item = EvalResult(**item)
            except TypeError as err:
                raise ValueError(f"card_data['eval_results'][{i}]: {err}; fields: {_EVAL_RESULT_FIELDS}") from None
        if not isinstance(item, EvalResult):
            raise ValueError(f"card_data['eval_results'][{i}] must be an EvalResult or a dict, got {item!r}")
        converted.append(item)
    return converted


def _check_metadata(metadata: dict[str, Any]) -> None:
    """Local checks of the YAML metadata, so that a bad card fails before any request."""
    for name in _LIST_FIELDS:
        values = _as_list(metadata.get(name))
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise ValueError(
                f"card_data[{name!r}] must be a string or a list of non-empty strings, got {metadata[name]!r}"
            )
        if name in _REPO_ID_FIELDS:
            for value in values:
                try:
                    validate_repo_id(value)
                except ValueError as err:
                    raise ValueError(f"card_data[{name!r}] entry {value!r} is not a Hub repo id: {err}") from None
    for name in ("license", "pipeline_tag", "license_name", "license_link"):
        if name in metadata and (not isinstance(metadata[name], str) or not metadata[name].strip()):
            raise ValueError(f"card_data[{name!r}] must be a non-empty string, got {metadata[name]!r}")
    for name, value in metadata.items():
        try:
            yaml.safe_dump({name: value})  # what the Hub and ModelCard read back with yaml.safe_load
        except yaml.YAMLError:
            raise ValueError(
                f"card_data[{name!r}] = {value!r} cannot be written as YAML: use strings, numbers, lists and dicts"
            ) from None


def _base_model_hint(name_or_path: str, repo_id: str) -> str | None:
    """The Hub repo a model instance was loaded from (`config.name_or_path`), if it was not a local folder."""
    if not name_or_path or name_or_path == repo_id or Path(name_or_path).exists():
        return None
    try:
        validate_repo_id(name_or_path)
    except ValueError:
        return None
    return name_or_path


def _is_preset(config: GPTScratchConfig, name: str) -> bool:
    preset = GPTScratchConfig.from_preset(name)
    fields = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_word_embeddings",
              "layer_norm_eps")
    return all(getattr(config, field) == getattr(preset, field) for field in fields)


def _as_list(value: Any) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _cell(value: Any) -> str:
    """A value as one Markdown table cell."""
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


# ----- errors ---------------------------------------------------------------------------------------------


@contextmanager
def _hub_errors(action: str, token: str, *, lost_answer: bool = False) -> Iterator[None]:
    """Turn the Hub client's HTTP and connection errors into a HubPushError naming the status and endpoint.

    The token is scrubbed from the message and from the chained original error. `lost_answer`: a connection that
    broke during this request may have landed it (a commit), so the message says to check before retrying.
    """
    try:
        yield
    except HfHubHTTPError as err:
        _scrub(err, token)
        response = err.response
        endpoint = _public_url(response.request.url)
        message = (f"{action} failed: the Hub answered {response.status_code} {response.reason_phrase} to "
                   f"{response.request.method} {endpoint}")
        if err.server_message:
            message += f": {err.server_message.strip()}"
        if err.request_id:
            message += f" (request id {err.request_id})"
        if response.status_code in (401, 403):
            message += "; check that the token is valid and has write access to this namespace"
        message += "; nothing was committed"
        raise HubPushError(message.replace(token, "<token>"), status_code=response.status_code,
                           endpoint=endpoint) from err
    except OfflineModeIsEnabled as err:
        raise HubPushError(f"{action} failed: HF_HUB_OFFLINE is set, so huggingface_hub makes no requests") from err
    except _ConnectionFailure as err:
        _scrub(err, token)
        try:
            request = err.request
        except RuntimeError:  # the error came before a request was built
            request = None
        endpoint = _public_url(request.url) if request is not None else constants.ENDPOINT
        method = f"{request.method} " if request is not None else ""
        if isinstance(err, _Timeout):  # no connection, or no answer, in time
            limits = request.extensions.get("timeout", {}) if request is not None else {}
            message = (f"{action} failed: the Hub did not answer in time ({method}{endpoint}): "
                       f"{type(err).__name__} after {limits.get('connect', '?')} s to connect / "
                       f"{limits.get('read', '?')} s to answer (wait longer with timeout= or "
                       f"GPT_SCRATCH_HUB_CONNECT_TIMEOUT / GPT_SCRATCH_HUB_READ_TIMEOUT)")
        else:
            message = (f"{action} failed: could not reach the Hub ({method}{endpoint}): {err}; check the network and "
                       f"HF_ENDPOINT")
        message += ("; if the connection broke during the commit, check the repository before retrying"
                    if lost_answer else "; nothing was committed")
        raise HubPushError(message.replace(token, "<token>"), endpoint=endpoint) from err


def _scrub(err: BaseException, token: str) -> None:
    """Remove the token from an error's message (a server may echo a request back)."""
    err.args = tuple(arg.replace(token, "<token>") if isinstance(arg, str) else arg for arg in err.args)


def _public_url(url: Any) -> str:
    """scheme://host[:port]/path: no credentials, no query (pre-signed upload URLs carry signatures there)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
