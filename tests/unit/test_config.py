"""Configuration: every bad key, type or value is one clear ConfigError; round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnas.config import PRESETS, RunConfig, flatten, load_config, parse_set, read_toml, to_toml
from gnas.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path: Path):
    cfg = load_config(None, {"evolution.population": 6, "space.stage_nodes": [3, 3]}, preset="tiny")
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid(name: str):
    assert isinstance(load_config(preset=name), RunConfig)


def test_paper_preset_is_table_one():
    cfg = load_config(preset="paper")
    assert (cfg.evolution.population, cfg.evolution.generations, cfg.train.epochs) == (10, 10, 10)
    assert (cfg.space.max_depth, cfg.space.max_nodes) == (5, 1024)


@pytest.mark.parametrize("overrides,needle", [
    ({"evolution.popsize": 8}, "unknown config key evolution.popsize"),
    ({"evolutions.population": 8}, "unknown config section [evolutions]"),
    ({"population": 8}, "section.key"),
    ({"evolution.population": "many"}, "expected int"),
    ({"evolution.population": 2.5}, "expected int"),
    ({"evolution.population": True}, "expected int"),
    ({"evolution.growth": "perhaps"}, "expected bool"),
    ({"space.stage_nodes": "three"}, "space.stage_nodes"),
    ({"evolution.indpb": 1.5}, "[0.0, 1.0]"),
    ({"evolution.indpb": float("nan")}, "finite"),
    ({"evolution.population": 1}, "evolution.population=1 is out of range"),
    ({"evolution.generations": 0}, "evolution.generations=0 is out of range"),
    ({"train.epochs": -1}, "train.epochs=-1"),
    ({"space.stage_nodes": [3, 9]}, "space.stage_nodes=9"),
    ({"evolution.init": "warm"}, "choose one of coe, random"),
    ({"evolution.elite": 10}, "evolution.elite=10 must be below"),
    ({"space.max_depth": 9}, "space.max_depth=9"),
    ({"prune.nm": "4:2"}, "prune.nm"),
])
def test_bad_values_name_key_value_and_allowed(overrides: dict, needle: str):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="huge")


@pytest.mark.parametrize("text,needle", [("[evolution\n", "not valid TOML"),
                                         ("population = 3\n", "must sit in a section"),
                                         ("[evolution.inner]\nx = 1\n", "too deep"),
                                         ("[evolution]\nmutpb = 0.5\n", "evolution.mutpb")])
def test_bad_toml_files(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert needle in str(info.value)


def test_missing_and_binary_config_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")
    (tmp_path / "bin.toml").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(ConfigError):
        read_toml(tmp_path / "bin.toml")


def test_parse_set():
    assert parse_set(["evolution.population=20", "space.stage_nodes=[3,3]", "data.dataset=digits"]) == {
        "evolution.population": 20, "space.stage_nodes": [3, 3], "data.dataset": "digits"}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_set(["evolution.population"])


def test_flatten_and_override_precedence(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[evolution]\npopulation = 6\nseed = 4\n")
    cfg = load_config(path, {"evolution.population": 12}, preset="paper")
    assert (cfg.evolution.population, cfg.evolution.seed, cfg.train.epochs) == (12, 4, 10)
    assert flatten({"a": {"b": 1}}) == {"a.b": 1}

# Any string a user can pass as a path: control characters, quotes, backslashes,
# tabs, newlines, unicode (surrogates cannot be encoded as UTF-8 and are no path).
_paths = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(data_dir=_paths, dataset=_paths, ray_address=_paths)
def test_every_user_path_round_trips_through_config_toml(tmp_path_factory, data_dir: str,
                                                          dataset: str, ray_address: str):
    cfg = load_config(None, {"data.data_dir": data_dir, "data.dataset": dataset,
                             "parallel.ray_address": ray_address})
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(to_toml(cfg).encode("utf-8"))
    back = load_config(path)
    assert (back.data.data_dir, back.data.dataset, back.parallel.ray_address) == (
        data_dir, dataset, ray_address)
    assert back == cfg


def test_newline_quote_and_tab_in_data_dir_read_back(tmp_path: Path):
    odd = 'a\nb"c\'d\te\\f ü'
    cfg = load_config(None, {"data.data_dir": odd})
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    assert read_toml(path)["data"]["data_dir"] == odd


def test_choices_of_reads_the_fields_own_vocabulary():
    from gnas.config import choices_of

    assert choices_of("evolution.strategy") == ("ga", "random", "aging")
    assert choices_of("prune.mask")[0] == "none"
    with pytest.raises(ConfigError, match="fixed set of choices"):
        choices_of("evolution.population")
