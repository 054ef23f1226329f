"""Presets: the published setups as a model plus its fit options, overridable key by key."""

from __future__ import annotations

import pytest

from densitylab import models


def test_pacgan2d_preset_is_the_published_architecture():
    p = models.PRESETS["pacgan2d"]
    assert p.kind == "gan" and p.cls is models.GAN
    assert "data_dim" not in p.model  # the data set gives the shape
    gan = models.preset("pacgan2d", seed=0)
    cfg = gan.config
    assert cfg["data_shape"] == [2] and cfg["latent_dim"] == 2
    assert cfg["g_hidden"] == [400] * 4 and cfg["d_hidden"] == [200] * 3
    assert cfg["g_norm"] == "batch" and cfg["d_activation"] == "maxout"
    assert cfg["maxout_pieces"] == 5 and cfg["pack"] == 1
    assert cfg["betas"] == [0.8, 0.999] and cfg["init_std"] == 0.02
    assert cfg["loss"] == "non_saturating"
    assert models.available_presets() == ["pacgan2d", "pacgan2d_alternating"]


def test_preset_keywords_override_one_by_one_and_train_defaults_follow_the_pack():
    gan = models.preset("pacgan2d", pack=3, g_hidden=[8], d_hidden=[8], seed=1)
    cfg = gan.config
    assert cfg["pack"] == 3 and cfg["g_hidden"] == [8] and cfg["d_activation"] == "maxout"
    assert models.preset("pacgan2d", data_dim=3).config["data_shape"] == [3]
    train = models.preset_train_defaults("pacgan2d", pack=3)
    assert train == {"lr": 1e-4, "batch_size": 300, "train_size": 100_000, "steps": 400_000,
                     "lr_schedule": "constant"}
    assert models.preset_train_defaults("pacgan2d")["batch_size"] == 100
    train["lr"] = 1.0  # a copy
    assert models.PRESETS["pacgan2d"].train["lr"] == 1e-4
    # the preset's own dicts are not changed by building models from them
    assert models.PRESETS["pacgan2d"].model["pack"] == 1


def test_preset_errors():
    with pytest.raises(ValueError, match="unknown preset 'dcgan'"):
        models.preset("dcgan")
    with pytest.raises(ValueError, match="unknown preset"):
        models.preset_train_defaults("nope")
    with pytest.raises(ValueError, match="pack"):
        models.preset("pacgan2d", pack=0)
