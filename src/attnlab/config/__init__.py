"""Validated run configurations: the schema (schema.py), its error wording (errors.py), what a
field accepts for the command line (fields.py), loading from mappings and YAML files (files.py) and
plugins from outside the package (plugins.py). Every public name is importable from here."""

from attnlab.config.errors import ConfigError, describe_validation_error
from attnlab.config.fields import FieldFacts, describe_field
from attnlab.config.files import (apply_overrides, flatten, load_config, parse_config, parse_yaml, read_yaml,
                                  yaml_error_line)
from attnlab.config.plugins import Plugins, load_entry_points, load_plugins, loaded_plugins
from attnlab.config.schema import (SECTIONS, ArLagDataConfig, DataConfig, DataSection, DiagnosticsConfig, DigitsConfig,
                                   IndRNNConfig, KernelTransformerConfig, MnistConfig, ModelConfig, ModelSection,
                                   PositiveFloat, PositiveInt, Radii, RandomSequencesConfig, ReferenceConfig, RunConfig,
                                   SeriesDataConfig, ShallowEncoderConfig, Strict, TeacherDataConfig, TrainConfig,
                                   config_to_dict, identity_dict, upgrade_stored)

__all__ = [
    "ArLagDataConfig", "ConfigError", "DataConfig", "DataSection", "DiagnosticsConfig", "DigitsConfig", "FieldFacts",
    "IndRNNConfig", "KernelTransformerConfig", "MnistConfig", "ModelConfig", "ModelSection", "Plugins",
    "PositiveFloat", "PositiveInt", "Radii", "RandomSequencesConfig", "ReferenceConfig", "RunConfig", "SECTIONS",
    "SeriesDataConfig", "ShallowEncoderConfig", "Strict", "TeacherDataConfig", "TrainConfig", "apply_overrides",
    "config_to_dict", "describe_field", "describe_validation_error", "flatten", "identity_dict", "load_config",
    "load_entry_points", "load_plugins", "loaded_plugins", "parse_config", "parse_yaml",
    "read_yaml", "upgrade_stored", "yaml_error_line",
]
