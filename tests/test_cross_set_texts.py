"""The text-pool loss's cross-set rule (``train --open --cross-set ignore``)."""

import numpy as np

from rs_sage_dev.open_vocab import EUROSAT_AID_OVERLAP, OPEN_CLASSES, cross_set_ignore, overlap_matrix


def _pool(texts_of: dict[str, list[str]]):
    pool = sorted({t for ts in texts_of.values() for t in ts})
    pos = np.zeros((len(OPEN_CLASSES), len(pool)), np.float32)
    for c, ts in texts_of.items():
        for t in ts:
            pos[OPEN_CLASSES.index(c), pool.index(t)] = 1
    return pool, pos


def test_a_cultivated_field_is_not_taught_to_be_unlike_farmland():
    pool, pos = _pool({"aid:Farmland": ["farmland", "cropland"], "eurosat:AnnualCrop": ["annual crop", "crop fields"],
                       "aid:Forest": ["forest"], "eurosat:Forest": ["forest", "woodland"],
                       "aid:Airport": ["airport"]})
    ignore = cross_set_ignore(pos)
    eu_crop, aid_farm = OPEN_CLASSES.index("eurosat:AnnualCrop"), OPEN_CLASSES.index("aid:Farmland")
    assert ignore[eu_crop, pool.index("farmland")] and ignore[aid_farm, pool.index("crop fields")]
    # its own texts stay positives, an unrelated class stays a negative
    assert not ignore[eu_crop, pool.index("annual crop")]
    assert not ignore[eu_crop, pool.index("airport")]
    # a text both sets use ("forest") is a positive of both, never ignored
    assert not ignore[OPEN_CLASSES.index("aid:Forest"), pool.index("forest")]
    assert ignore[OPEN_CLASSES.index("aid:Forest"), pool.index("woodland")]
    assert not (ignore & (pos > 0)).any()


def test_the_overlap_only_pairs_classes_of_different_data_sets():
    m = overlap_matrix()
    assert (m == m.T).all()
    n_aid = sum(c.startswith("aid:") for c in OPEN_CLASSES)
    assert not m[:n_aid, :n_aid].any() and not m[n_aid:, n_aid:].any()
    assert m.sum() == 2 * sum(len(v) for v in EUROSAT_AID_OVERLAP.values())


def test_coarse_training_views_are_coarser_than_the_ordinary_ones():
    from rs_sage_dev.coarse_views import coarse_augment
    from rs_sage_dev.prepare import augment

    img = (np.random.default_rng(0).random((150, 150, 3)) * 255).astype(np.uint8)

    def detail(x):  # mean absolute difference between neighbouring pixels
        return float(np.abs(np.diff(x.astype(np.float32), axis=1)).mean())

    coarse, ordinary = [], []
    for seed in range(8):
        c = coarse_augment(img, np.random.default_rng(seed), 160)
        o = augment(img, np.random.default_rng(seed), 160)
        assert c.shape == o.shape == (160, 160, 3)
        assert c.min() >= 0 and c.max() <= 255
        coarse.append(detail(c))
        ordinary.append(detail(o))
    assert np.mean(coarse) < 0.6 * np.mean(ordinary)
