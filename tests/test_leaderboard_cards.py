"""Model cards: every built-in adapter declares one, `cbench models --card` prints it, the default says so."""

from __future__ import annotations

import pytest

from copernicus_bench.cli import main
from copernicus_bench.encoder import EncoderAdapter
from copernicus_bench.model_card import OVERLAP_VALUES, ModelCard
from copernicus_bench.models_registry import create_model

BUILT_IN = ["random", "softcon", "croma", "dofa", "copernicus-fm"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_adapters_declare_a_full_card(name):
    card = create_model(name, seed=0).model_card()
    assert isinstance(card, ModelCard) and card.name == name
    assert card.overlap in OVERLAP_VALUES and card.overlap != "unknown"
    for field in ("architecture", "parameters", "code_license", "weights_license", "pretraining_data",
                  "citation", "release"):
        assert getattr(card, field) and "not declared" not in getattr(card, field)
    assert (card.overlap == "none") == (name == "random")


def test_models_card_cli_prints_the_card(capsys):
    assert main(["models", "--card", "copernicus-fm"]) == 0
    out = capsys.readouterr().out
    assert "CC-BY-4.0" in out and "arXiv:2503.11849" in out and "overlap" in out


def test_models_card_cli_unknown_model_is_one_line_error(capsys):
    assert main(["models", "--card", "no-such-model"]) != 0
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and "Traceback" not in err


def test_an_adapter_without_a_card_gets_an_undeclared_one():
    class Bare(EncoderAdapter):
        name = "bare"

        def build(self, card, pipeline, seed):  # pragma: no cover - not built here
            raise NotImplementedError

    card = Bare().model_card()
    assert card.overlap == "unknown" and card.code_license == "not declared"
    with pytest.raises(ValueError, match="overlap must be one of"):
        ModelCard(name="x", architecture="", parameters="", code_license="", weights_license="",
                  pretraining_data="", pretraining_sensors=(), citation="", release="", overlap="maybe")
