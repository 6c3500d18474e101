"""Backbone split and training-cache guards (no shipped model or shared data needed)."""

import json

import pytest
import torch

from core.errors import RsSageError
from rs_sage_dev.backbone import stem_blocks
from rs_sage_dev.model import Encoder, ModelConfig
from rs_sage_dev.prepare import stem_settings
from rs_sage_dev.training import TrainConfig, check_cache, default_cache


def test_where_the_stem_is_cut_does_not_move_the_levels():
    """Training stage 3 must not change what the fine, object and scene maps are."""
    torch.manual_seed(0)
    shipped, deeper = Encoder(ModelConfig()).eval(), Encoder(ModelConfig(frozen_blocks=3)).eval()
    x = torch.rand(2, 3, 160, 160) * 2 - 1
    with torch.inference_mode():
        a = shipped.top(shipped.stem(x))
        b = deeper.top(deeper.stem(x))
    assert [t.shape[1:] for t in b] == [(40, 20, 20), (112, 10, 10), (1280, 5, 5)]
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    assert deeper.stem(x).shape[1:] == (24, 40, 40)
    assert not any(p.requires_grad for p in deeper.stem.parameters())
    extra = sum(p.numel() for p in deeper.top.parameters()) - sum(p.numel() for p in shipped.top.parameters())
    assert extra > 0  # stage 3 moved from the frozen stem into the trained top


@pytest.mark.parametrize("bad", [0, 6, 99])
def test_stem_cut_past_the_fine_level_is_refused(bad):
    with pytest.raises(ValueError, match="frozen_blocks"):
        stem_blocks("efficientnet-lite0", bad)


def test_training_refuses_a_cache_made_with_another_cut(tmp_path):
    tc = TrainConfig(frozen_blocks=3)
    (tmp_path / "stem.json").write_text(json.dumps(stem_settings("efficientnet-lite0", 160, None)))
    with pytest.raises(RsSageError, match="another --cache"):
        check_cache(tmp_path, tc, "efficientnet-lite0")
    (tmp_path / "stem.json").write_text(json.dumps(stem_settings("efficientnet-lite0", 160, 3)))
    check_cache(tmp_path, tc, "efficientnet-lite0")
    assert default_cache(160, 3) != default_cache(160) != default_cache(192)


def test_soup_averages_float_weights_and_keeps_step_counters():
    from rs_sage_dev.soup import average_state_dicts

    a = {"w": torch.tensor([1.0, 3.0]), "bn.num_batches_tracked": torch.tensor(7)}
    b = {"w": torch.tensor([3.0, 5.0]), "bn.num_batches_tracked": torch.tensor(9)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert int(out["bn.num_batches_tracked"]) == 7
    with pytest.raises(RsSageError, match="same network"):
        average_state_dicts([a, {"w": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(1)}])


def test_soup_refuses_ingredients_with_another_config():
    from rs_sage_dev.soup import check_compatible

    base = {"config": {"dim": 256}, "answers": ["yes"], "kb_checksum": "x"}
    check_compatible({"a": base, "b": dict(base)})
    with pytest.raises(RsSageError, match="kb_checksum"):
        check_compatible({"a": base, "b": {**base, "kb_checksum": "y"}})


def test_greedy_soup_keeps_only_ingredients_that_do_not_lower_the_score():
    from rs_sage_dev.soup import greedy_order

    # a soup's score: the best single one plus one per "good" extra, minus two per "bad" extra
    def score_of(names):
        return 10 + sum(1 if n.startswith("good") else -2 for n in names[1:])

    kept, score = greedy_order({"best": 10, "bad": 9, "good1": 8, "good2": 7}, score_of)
    assert kept == ["best", "good1", "good2"] and score == 12


def test_same_weights_run_at_a_larger_input():
    """fixres: only the non-persistent pooling matrices depend on the input size, so a checkpoint
    trained at 160 px loads strictly into the 192 px network and gives the same token layout."""
    from rs_sage_dev.fixres import resized_checkpoint
    from rs_sage_dev.model import RsSageModel

    ck = {"model": RsSageModel(ModelConfig(), pretrained=False).state_dict(),
          "config": ModelConfig().to_dict(), "train": {"variant": "full"}}
    big = resized_checkpoint(ck, 192)
    assert big["config"]["input_size"] == 192 and ck["config"]["input_size"] == 160
    assert big["train"]["fixres_from"] == 160
    model = RsSageModel(ModelConfig.from_dict(big["config"]), pretrained=False).eval()
    model.load_state_dict(big["model"])
    with torch.inference_mode():
        tokens, queries = model.encoder(torch.rand(2, 3, 192, 192) * 2 - 1)
    assert tokens.shape == (2, 3, 16, 384) and queries.shape == (2, 3, 384)
    with pytest.raises(RsSageError, match="multiple of 32"):
        resized_checkpoint(ck, 200)


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "efficientnet-lite2"])
def test_levels_are_stride_8_16_32_for_every_backbone(backbone):
    """The fine and object levels are the ends of the stride-8 and stride-16 stages, whatever the
    backbone's depth (Lite2 repeats its stages more than Lite0)."""
    enc = Encoder(ModelConfig(backbone=backbone), pretrained=False).eval()
    with torch.inference_mode():
        fine, obj, scene = enc.top(enc.stem(torch.rand(1, 3, 160, 160) * 2 - 1))
    assert [t.shape[-1] for t in (fine, obj, scene)] == [20, 10, 5]
    assert enc.stem(torch.rand(1, 3, 160, 160)).shape[-1] == 20  # the stem ends at the fine level
    if backbone != "efficientnet-lite0":
        assert default_cache(160, None, backbone) != default_cache(160)  # features of its own
