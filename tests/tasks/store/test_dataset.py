"""The one Parquet layout: real Fashion-MNIST images go to disk and come back bit for bit."""
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.stages.scale import StandardScaler
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import (
    _RECENT,
    Frame,
    from_arrow,
    read_frame,
    tensor_column,
    to_arrow,
)


@pytest.fixture(scope="module")
def images(fashion):
    return fashion.take(np.arange(3_000))


def _from_disk(store: ArtifactStore, table: pa.Table, stage: str):
    ref = store.put_table(table, stage)
    _RECENT.clear()  # read the file, not this process's copy
    return ref, read_frame(ref.path)


def test_raw_and_scaled_images_round_trip_through_parquet_exactly(images, tmp_path):
    store = ArtifactStore(tmp_path)
    standardised = StandardScaler().fit(images.X).transform(images.X)
    scaled = Frame(images.spec, standardised, images.y, images.row_id, np.full(len(images), "train"))
    for stage, frame, dtype in (("raw", images, np.uint8), ("scaled", scaled, np.float32)):
        ref, back = _from_disk(store, to_arrow(frame), stage)
        assert pq.read_schema(ref.path).field("image").type == pa.binary(784 * np.dtype(dtype).itemsize)
        assert back.X.dtype == dtype and back.X.shape == frame.X.shape
        assert np.array_equal(back.X, frame.X) and np.array_equal(back.y, frame.y)
        assert np.array_equal(back.row_id, frame.row_id) and back.spec == frame.spec
        assert back.inputs().shape == (len(frame), 28, 28)


def test_one_split_is_read_from_disk_in_row_groups_without_caching_the_whole_table(images, tmp_path):
    """evaluate and report read the test rows of a file this process no longer holds: they get
    exactly those rows, from a file of several ~8 MiB row groups, and the cache stays empty."""
    standardised = StandardScaler().fit(images.X).transform(images.X)  # 3,000 x 784 float32: 9.4 MB
    splits = np.array(["train", "valid", "test"])[np.arange(len(images)) % 3]
    scaled = Frame(images.spec, standardised, images.y, images.row_id, splits)
    ref = ArtifactStore(tmp_path).put_table(to_arrow(scaled), "scaled")
    _RECENT.clear()
    assert pq.ParquetFile(ref.path).metadata.num_row_groups == 2
    test = read_frame(ref.path, filters=[("split", "=", "test")])
    assert str(ref.path) not in _RECENT
    assert np.array_equal(test.row_id, images.row_id[splits == "test"]) and set(test.split) == {"test"}
    assert np.array_equal(test.X, standardised[splits == "test"]) and test.spec == images.spec


def test_a_narrow_table_is_one_row_group_however_many_rows(tmp_path):
    from tasks.store.parquet_layout import ROW_GROUP_BYTES
    rows = 2 * ROW_GROUP_BYTES // (8 * 3)  # two groups' worth had it been a table of images
    table = pa.table({"row_id": np.arange(rows), "x": np.random.default_rng(0).random(rows),
                      "y": np.zeros(rows)})
    ref = ArtifactStore(tmp_path).put_table(table, "raw")
    assert pq.ParquetFile(ref.path).metadata.num_row_groups == 1


def test_a_sliced_or_chunked_tensor_column_reads_the_right_rows(images):
    table = to_arrow(images)
    assert np.array_equal(from_arrow(table.slice(10, 5)).X, images.X[10:15])  # a column with an offset
    chunked = pa.concat_tables([table.slice(0, 7), table.slice(7, 8)])
    assert chunked["image"].num_chunks == 2
    assert np.array_equal(tensor_column(chunked, "image"), images.X[:15])
    assert tensor_column(table.slice(0, 0), "image").shape == (0, 784)


def test_a_column_that_is_not_a_pipeline_tensor_is_refused_by_name(images):
    table = to_arrow(images).drop_columns(["image"]).append_column("image", pa.array([b"x"] * len(images)))
    with pytest.raises(ValueError, match="column 'image' is binary"):
        tensor_column(table, "image")


def test_an_artifact_in_the_old_list_layout_is_named_as_such(images):
    flat = pa.array(images.X.reshape(-1))
    old = to_arrow(images).drop_columns(["image"]).append_column(
        "image", pa.FixedSizeListArray.from_arrays(flat, 784))
    with pytest.raises(ValueError, match="older version of the pipeline; re-run"):
        from_arrow(old)


FREED_BLOCK_CHECK = """
import numpy as np
import tasks.store.dataset  # noqa: F401  (fixes the allocator threshold on import: tasks/core/allocator.py)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
big = np.ones(2 * 2**20); del big  # glibc's default would now keep blocks up to 16 MB on the heap
before = rss(); column = np.ones(2**20); column[:] = 2; del column  # a million-row column, 8 MB
print(rss() - before)
"""


def test_a_freed_million_row_column_goes_back_to_the_system():
    """The flow's process must not keep the memory of each stage's freed columns (tasks/core/allocator.py)."""
    out = subprocess.run([sys.executable, "-c", FREED_BLOCK_CHECK], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) < 2**20


def test_the_command_line_turns_numpy_s_huge_page_advice_off_before_numpy_loads():
    """Huge-page advice can stall the first write to each big array (tasks/core/allocator.py):
    the command line sets numpy's switch before its imports load numpy, so numpy reads it."""
    check = ("import sys; import flows.__main__, os; "
             "print(os.environ.get('NUMPY_MADVISE_HUGEPAGE'), 'numpy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split()[-2:] == ["0", "True"]
    probe = ("import os; os.environ['NUMPY_MADVISE_HUGEPAGE'] = '0'; import tasks.core.allocator; "
             "import sys; print('numpy' in sys.modules)")  # the allocator itself loads no numpy
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.split()[-1] == "False"


HEAP_TOP_CHECK = """
import ctypes
from tasks.core.allocator import tune_memory
tune_memory()  # first, before any large free: as the command line's option check does
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
blocks = [libc.malloc(256 * 1024) for _ in range(64)]  # 16 MiB of heap blocks (each under the mmap threshold)
for block in blocks:
    ctypes.memset(block, 1, 256 * 1024)
before = rss()
for block in reversed(blocks):
    libc.free(block)
print(before - rss())
"""


def test_the_heap_keeps_its_top_between_training_steps():
    """A step frees what the next one allocates again: the heap must not give its top back to the
    kernel each time (tasks/core/allocator.py: with the trim threshold left at 128 KiB, training
    ran at half speed)."""
    out = subprocess.run([sys.executable, "-c", HEAP_TOP_CHECK], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) < 2**20
