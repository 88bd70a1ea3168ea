"""Run identity: a run is named by the hash of its resolved config and of the version of what the
code records (the results version, derived from the recorder registry: attnlab.train.recorders)."""

from __future__ import annotations

import hashlib
import json

from attnlab.config import RunConfig, config_to_dict, identity_dict


def run_id(config: RunConfig, results_version: str) -> str:
    """16 hex digits of the SHA-256 of the resolved config's canonical JSON (identity_dict: equal
    for configs that ask for the same thing) and `results_version`."""
    canonical = json.dumps({"config": identity_dict(config), "results_version": results_version},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def seedless_key(config: RunConfig) -> str:
    """The resolved config without its seed, as canonical JSON: configs with equal keys differ only
    by seed, and train together (stacked) in one batch."""
    return json.dumps({k: v for k, v in config_to_dict(config).items() if k != "seed"}, sort_keys=True)
