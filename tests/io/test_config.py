import pytest
import yaml

from wespk.io.config import ConfigError, apply_overrides, load_config, parse_overrides, save_config


def write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_dotted_overrides_typed(tmp_path):
    path = write(tmp_path, {"model": "ResNet34", "model_args": {"embed_dim": 256},
                            "dataset_args": {"aug_prob": 0.6, "fbank_args": {"dither": 1.0}}})
    config = load_config(path, ["--model_args.embed_dim", "192", "--dataset_args.aug_prob=0.0",
                                "--dataset_args.fbank_args.dither", "0", "--num_epochs", "3",
                                "--model_args.m_channels", "16"])
    assert config["model_args"] == {"embed_dim": 192, "m_channels": 16}
    assert config["dataset_args"]["aug_prob"] == 0.0
    assert config["dataset_args"]["fbank_args"]["dither"] == 0
    assert config["num_epochs"] == 3


def test_unknown_top_level_key_in_file(tmp_path):
    path = write(tmp_path, {"model": "ResNet34", "modle_args": {}})
    with pytest.raises(ConfigError, match="unknown config key.*modle_args"):
        load_config(path)


def test_unknown_override_keys(tmp_path):
    path = write(tmp_path, {"dataset_args": {"fbank_args": {"dither": 1.0}}})
    with pytest.raises(ConfigError, match="unknown config key 'num_epoch'"):
        load_config(path, ["--num_epoch", "3"])
    # below the first level, the key must exist already
    with pytest.raises(ConfigError, match="dataset_args.fbank_args has no key 'dithr'"):
        load_config(path, ["--dataset_args.fbank_args.dithr", "0.1"])
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--num_epochs"])


def test_overrides_do_not_mutate_and_save_round_trip(tmp_path):
    base = {"num_epochs": 1, "model_args": {"embed_dim": 8}}
    new = apply_overrides(base, [("model_args.embed_dim", 16)])
    assert base["model_args"]["embed_dim"] == 8 and new["model_args"]["embed_dim"] == 16
    save_config(new, str(tmp_path / "out.yaml"))
    assert yaml.safe_load((tmp_path / "out.yaml").read_text()) == new


def test_missing_and_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(str(bad))
