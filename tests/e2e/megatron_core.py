"""megatron-core's dataset modules (pinned in scripts/requirements-test.txt, installed --no-deps), loaded
without megatron/core/__init__.py, which pulls in its whole training stack (and a newer torch than
Debian's). Only two tiny names it imports are stubbed: a rank-0 logger and a tokenizer base class
that the dataset code never calls. Everything else (IndexedDataset, IndexedDatasetBuilder, the
split-string parser, the C++ helpers build_sample_idx and build_blending_indices) is megatron-core's
own code."""
import importlib.util
import os
import sys
import types

_spec = importlib.util.find_spec("megatron")
if _spec is None:
    raise ImportError("megatron-core is not installed: run scripts/python-env.sh (it pins megatron-core)")
_root = list(_spec.submodule_search_locations)[0]
for _name, _path in (("megatron", _root), ("megatron.core", os.path.join(_root, "core"))):
    if _name not in sys.modules:
        _m = types.ModuleType(_name)
        _m.__path__ = [_path]
        sys.modules[_name] = _m
if "megatron.core.utils" not in sys.modules:
    _u = types.ModuleType("megatron.core.utils")
    _u.log_single_rank = lambda logger, *args, rank=0, **kwargs: logger.log(*args, **kwargs)
    sys.modules["megatron.core.utils"] = _u
if "megatron.core.tokenizers" not in sys.modules:
    _t = types.ModuleType("megatron.core.tokenizers")
    _t.MegatronTokenizerBase = object
    sys.modules["megatron.core.tokenizers"] = _t

from megatron.core.datasets import helpers  # noqa: E402  (the compiled helpers_cpp)
from megatron.core.datasets.blended_megatron_dataset_config import (  # noqa: E402
    convert_split_vector_to_split_matrix, parse_and_normalize_split)
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder  # noqa: E402

__all__ = ["helpers", "IndexedDataset", "IndexedDatasetBuilder", "parse_and_normalize_split",
           "convert_split_vector_to_split_matrix"]
