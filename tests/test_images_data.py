"""Image targets: the digits split, stacked digits, the IDX reader and the synthetic blobs."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from densitylab import images


def _rows(x: torch.Tensor) -> list[bytes]:
    return [r.numpy().tobytes() for r in x.reshape(len(x), -1)]


# ------------------------------------------------------------------------------ digits


def test_digits_split_partitions_the_sklearn_images_and_is_stratified():
    bunch = sk_load_digits()
    xa, ya = images.load_digits("all")
    np.testing.assert_array_equal(xa.numpy().reshape(-1, 64) * 16, bunch.data)
    np.testing.assert_array_equal(ya.numpy(), bunch.target)
    xtr, ytr = images.load_digits("train")
    xte, yte = images.load_digits("test")
    assert xtr.shape == (1347, 1, 8, 8) and xte.shape == (450, 1, 8, 8)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    # Together the two splits are exactly the full set (as a multiset of (image, label) rows).
    both = sorted(zip(_rows(torch.cat([xtr, xte])), torch.cat([ytr, yte]).tolist(), strict=True))
    full = sorted(zip(_rows(xa), ya.tolist(), strict=True))
    assert both == full
    # Stratified: each class has a quarter of its images (rounded) in the test split.
    for c in range(10):
        total = int((ya == c).sum())
        assert abs(int((yte == c).sum()) - 0.25 * total) <= 1
    # Values are the original 0..16 counts divided by 16.
    assert float(xa.min()) == 0.0 and float(xa.max()) == 1.0
    assert torch.equal(xa * 16, (xa * 16).round())


def test_digits_split_is_fixed_by_seed():
    a, _ = images.load_digits("test", seed=0)
    b, _ = images.load_digits("test", seed=0)
    c, _ = images.load_digits("test", seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_load_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        images.load_digits("validation")
    with pytest.raises(TypeError, match="seed"):
        images.load_digits("train", seed=0.5)


def test_digits_target_samples_images_of_its_split():
    target = images.Digits("test")
    assert target.data_shape == (1, 8, 8) and target.dim == 64
    x = target.sample(200, seed=3)
    assert x.shape == (200, 1, 8, 8)
    assert torch.equal(x, target.sample(200, seed=3))
    pool = set(_rows(images.load_digits("test")[0]))
    assert all(r in pool for r in _rows(x))


# ------------------------------------------------------------------------------ stacked digits


def test_stacked_digits_channels_are_split_images_with_their_labels():
    x_test, y_test = images.load_digits("test")
    label_of: dict[bytes, set[int]] = {}
    for r, lab in zip(_rows(x_test), y_test.tolist(), strict=True):
        label_of.setdefault(r, set()).add(lab)
    target = images.StackedDigits("test")
    assert target.data_shape == (3, 8, 8)
    x, labels = target.sample(300, seed=0)
    assert x.shape == (300, 3, 8, 8) and labels.shape == (300, 3)
    for i in range(300):
        for ch in range(3):
            assert int(labels[i, ch]) in label_of[x[i, ch].numpy().tobytes()]
    x2, labels2 = target.sample(300, seed=0)
    assert torch.equal(x, x2) and torch.equal(labels, labels2)


def test_balanced_stacked_digits_are_uniform_over_the_1000_modes():
    n = 40_000
    _, labels = images.StackedDigits("train").sample(n, seed=1)
    # Each channel's digit is uniform on 0..9: a chi-square test per channel (9 d.o.f.); the
    # 99.9% quantile of chi2(9) is 27.9.
    for ch in range(3):
        counts = torch.bincount(labels[:, ch], minlength=10).double()
        chi2 = float(((counts - n / 10) ** 2 / (n / 10)).sum())
        assert chi2 < 27.9
    # Channels are independent: the first two digits are uniform on 0..99 (99 d.o.f., the 99.9%
    # quantile is 148.2).
    pair = torch.bincount(10 * labels[:, 0] + labels[:, 1], minlength=100).double()
    assert float(((pair - n / 100) ** 2 / (n / 100)).sum()) < 148.2


def test_mode_index_is_100a_plus_10b_plus_c():
    lab = torch.tensor([[0, 0, 0], [9, 9, 9], [1, 2, 3], [7, 0, 4]])
    assert images.mode_index(lab).tolist() == [0, 999, 123, 704]
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        images.mode_index(torch.zeros(4, 2, dtype=torch.long))


# ------------------------------------------------------------------------------ IDX files


def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    big = arr.astype(arr.dtype.newbyteorder(">"))
    return header + big.tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_reads_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labs = np.array([3, 0, 9, 1, 7], dtype=np.uint8)
    raw_i, raw_l = _idx_bytes(imgs, 0x08), _idx_bytes(labs, 0x08)
    if gz:
        raw_i, raw_l = gzip.compress(raw_i), gzip.compress(raw_l)
    (tmp_path / "img.idx").write_bytes(raw_i)
    (tmp_path / "lab.idx").write_bytes(raw_l)
    x = images.load_idx(tmp_path / "img.idx")
    y = images.load_idx(tmp_path / "lab.idx")
    assert x.shape == (5, 1, 4, 3) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0].numpy(), imgs / 255.0, rtol=0, atol=1e-7)
    assert y.dtype == torch.int64 and y.tolist() == labs.tolist()
    target = images.idx_dataset(tmp_path / "img.idx", tmp_path / "lab.idx")
    assert target.data_shape == (1, 4, 3) and target.dim == 12
    xs, ys = target.sample_with_labels(20, seed=0)
    for img, lab in zip(xs, ys, strict=True):
        j = int(np.flatnonzero(labs == int(lab))[0])
        assert torch.equal(img, x[j])


def test_load_idx_reads_big_endian_float_and_int16_images(tmp_path):
    f = np.linspace(0, 1, 2 * 2 * 2).reshape(2, 2, 2)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(f, 0x0E))
    np.testing.assert_allclose(images.load_idx(tmp_path / "f.idx")[:, 0].numpy(), f, atol=1e-7)
    s = np.array([[[0, 255], [128, 1]]], dtype=np.int16)
    (tmp_path / "s.idx").write_bytes(_idx_bytes(s, 0x0B))
    np.testing.assert_allclose(images.load_idx(tmp_path / "s.idx")[:, 0].numpy(), s / 255.0)


def test_load_idx_errors_are_clear(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\x08\x03\x00\x00" + b"\x00" * 20)
    with pytest.raises(ValueError, match="magic"):
        images.load_idx(p)
    p.write_bytes(b"\x00\x00\x42\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="type code"):
        images.load_idx(p)
    p.write_bytes(_idx_bytes(np.zeros((3, 4, 4), np.uint8), 0x08)[:-5])
    with pytest.raises(ValueError, match="truncated"):
        images.load_idx(p)
    p.write_bytes(_idx_bytes(np.zeros((3, 16), np.uint8), 0x08))
    with pytest.raises(ValueError, match="neither labels"):
        images.load_idx(p)
    with pytest.raises(ValueError, match=r"3-dimensional \(n, height, width\)"):
        images.load_idx(p, kind="images")
    p.write_bytes(_idx_bytes(np.full((2, 2, 2), 1.5), 0x0E))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        images.load_idx(p)
    p.write_bytes(_idx_bytes(np.full((2, 2, 2), 300, np.int16), 0x0B))
    with pytest.raises(ValueError, match="0..255"):
        images.load_idx(p)
    p.write_bytes(_idx_bytes(np.array([1, -2, 3], np.int8), 0x09))
    with pytest.raises(ValueError, match="non-negative"):
        images.load_idx(p)
    p.write_bytes(_idx_bytes(np.zeros(3, np.uint8), 0x08))
    with pytest.raises(ValueError, match="images"):
        images.load_idx(p, kind="images")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        images.load_idx(tmp_path / "missing.idx")
    with pytest.raises(ValueError, match="kind"):
        images.load_idx(p, kind="pixels")


def test_idx_dataset_rejects_mismatched_label_count(tmp_path):
    (tmp_path / "i").write_bytes(_idx_bytes(np.zeros((3, 2, 2), np.uint8), 0x08))
    (tmp_path / "l").write_bytes(_idx_bytes(np.zeros(4, np.uint8), 0x08))
    with pytest.raises(ValueError, match="4 labels but images_path holds 3"):
        images.idx_dataset(tmp_path / "i", tmp_path / "l")


# ------------------------------------------------------------------------------ blobs and registry


def test_synthetic_blobs_put_each_class_bump_at_its_own_place():
    x, y = images.synthetic_blobs(400, num_classes=4, size=8, noise=0.0, seed=0)
    assert x.shape == (400, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    c = 3.5
    for k in range(4):
        mean = x[y == k, 0].double().mean(0)
        grid = torch.arange(8, dtype=torch.float64)
        w = mean / mean.sum()
        centre = ((w.sum(1) * grid).sum(), (w.sum(0) * grid).sum())
        want = (c + 2 * math.cos(2 * math.pi * k / 4), c + 2 * math.sin(2 * math.pi * k / 4))
        # The intensity-weighted centre is within half a pixel of the designed one (the bump is
        # clipped at the border, which pulls the centroid slightly inwards).
        assert abs(float(centre[0]) - want[0]) < 0.5 and abs(float(centre[1]) - want[1]) < 0.5
    x2, y2 = images.synthetic_blobs(400, num_classes=4, size=8, noise=0.0, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_make_builds_every_available_target():
    assert images.available() == ["blobs", "digits", "stacked_digits"]
    for name in images.available():
        target = images.make(name)
        out = target.sample(4, seed=0)
        x = out[0] if isinstance(out, tuple) else out
        assert tuple(x.shape) == (4, *target.data_shape)
    with pytest.raises(ValueError, match="unknown image dataset"):
        images.make("cifar")
    with pytest.raises(TypeError, match="digits"):
        images.make("digits", colour=True)


def test_image_set_rejects_out_of_range_pixels():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        images.ImageSet(torch.full((2, 1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="4 dimension"):
        images.ImageSet(torch.zeros(2, 16))
