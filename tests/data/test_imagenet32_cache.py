"""ImageNet32's training split is memory-mapped from a one-time uint8 cache, not copied per rank
(ncib/data/imagenet32.py): two loads map one read-only file, the cache is reused, rebuilt when
the batches change, built once by ranks that start together, and skipped for subsets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ncib.data.imagenet32 as i32
from ncib.data import ImageNet32DataModule
from tests.helpers.fake_datasets import pattern_image, write_imagenet32


def _mapping_of(t: torch.Tensor) -> tuple[str, str] | None:
    """(permissions, file) of the mapping of this process that holds ``t``'s memory, if any."""
    ptr = t.untyped_storage().data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= ptr < hi:
            return parts[1], parts[5] if len(parts) > 5 else ""
    return None


def _train(root, **kw) -> torch.Tensor:
    dm = ImageNet32DataModule(seeds=[0, 1], root=str(root), **kw)
    dm.setup()
    return dm.splits["train"]


def _caches(folder: Path) -> list[Path]:
    return sorted(folder.glob("train_data.*.npy"))


def test_two_loads_map_one_read_only_cache_file(tmp_path):
    write_imagenet32(tmp_path, num_classes=10)
    folder = tmp_path / "Imagenet32_train_npz"
    x1, y1 = _train(tmp_path)
    (cache,) = _caches(folder)
    stamp = (cache.stat().st_ino, cache.stat().st_mtime_ns)
    x2, y2 = _train(tmp_path)
    assert _caches(folder) == [cache]
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == stamp  # reused, not rewritten
    for x in (x1, x2):
        perms, name = _mapping_of(x)
        assert name == str(cache) and perms.startswith("r-")  # the file itself, read-only
    assert x1.shape == (50, 3, 32, 32) and x1.dtype == torch.uint8
    assert all(torch.equal(x2[i], torch.from_numpy(pattern_image(i))) for i in (0, 7, 49))
    assert torch.equal(y1, y2) and torch.equal(y1.bincount(), torch.full((10,), 5))
    assert not list(folder.glob(".*.tmp"))  # nothing half-written left behind


def test_the_second_load_reads_no_image_batch(tmp_path, monkeypatch):
    write_imagenet32(tmp_path, num_classes=10)
    _train(tmp_path)
    reads = []
    real = i32._read
    monkeypatch.setattr(i32, "_read", lambda p, keys: reads.append(tuple(keys)) or real(p, keys))
    _train(tmp_path)
    assert ("data",) not in reads[:-1]  # labels of the ten batches; data of the val file only


def test_changed_batches_rebuild_the_cache(tmp_path):
    write_imagenet32(tmp_path, num_classes=10)
    folder = tmp_path / "Imagenet32_train_npz"
    _train(tmp_path)
    (old,) = _caches(folder)
    batch = folder / "train_data_batch_3.npz"
    with np.load(batch) as f:
        entry = {k: f[k] for k in f.files}
    entry["data"] = 255 - entry["data"]
    np.savez(batch, **entry)
    x, _ = _train(tmp_path)
    (new,) = _caches(folder)
    assert new != old and not old.exists()  # the stale cache is gone
    first_of_3 = 2 * 5  # batches of 5 images each
    assert torch.equal(x[first_of_3], torch.from_numpy(255 - pattern_image(first_of_3)))
    assert torch.equal(x[0], torch.from_numpy(pattern_image(0)))
    assert _mapping_of(x)[1] == str(new)


def test_a_truncated_cache_is_rebuilt(tmp_path):
    write_imagenet32(tmp_path, num_classes=10)
    folder = tmp_path / "Imagenet32_train_npz"
    _train(tmp_path)
    (cache,) = _caches(folder)
    cache.write_bytes(cache.read_bytes()[:1000])  # e.g. a copy interrupted by hand
    x, _ = _train(tmp_path)
    assert torch.equal(x[49], torch.from_numpy(pattern_image(49)))
    assert _mapping_of(x)[1] == str(cache)


def test_ranks_starting_together_build_the_cache_once(tmp_path, monkeypatch):
    write_imagenet32(tmp_path, num_classes=10)
    paths = sorted((tmp_path / "Imagenet32_train_npz").glob("*.npz"))
    paths.sort(key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    reads = []
    real = i32._read

    def slow_read(path, keys):
        reads.append(path)
        time.sleep(0.02)  # the builds would overlap without the lock
        return real(path, keys)

    monkeypatch.setattr(i32, "_read", slow_read)
    out = [None, None]

    def rank(r):
        out[r] = i32.train_cache(paths, [5] * 10)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 10  # one build
    assert all(isinstance(a, np.memmap) and not a.flags.writeable for a in out)
    assert np.array_equal(out[0], out[1])


def test_subsets_are_read_into_memory_without_a_cache(tmp_path):
    write_imagenet32(tmp_path, n_train=3000, num_classes=1000)
    folder = tmp_path / "Imagenet32_train_npz"
    x, y = _train(tmp_path, classes=[3, 1])
    assert len(y) == 6 and not _caches(folder)
    assert not str((_mapping_of(x) or ("", ""))[1]).endswith(".npy")  # an ordinary tensor
    x, y = _train(tmp_path, max_train_samples=1000)
    assert len(y) == 1000 and not _caches(folder)


def test_an_unwritable_cache_folder_falls_back_to_memory(tmp_path):
    write_imagenet32(tmp_path, num_classes=10)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match=r"cannot write the memory-mapped.*cache_dir"):
        x, _ = _train(tmp_path, cache_dir=str(blocker / "cache"))
    assert x.shape == (50, 3, 32, 32) and torch.equal(x[9], torch.from_numpy(pattern_image(9)))
    elsewhere = tmp_path / "cache"
    x, _ = _train(tmp_path, cache_dir=str(elsewhere))
    assert _mapping_of(x)[1] == str(_caches(elsewhere)[0])
