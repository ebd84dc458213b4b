"""The store on object storage, against a real S3 API (moto's server on 127.0.0.1): two hosts are
two working copies (KERAS_FLOWS_CACHE) of one bucket."""
from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from tasks.core.errors import DataError, OptionError
from tasks.store import blocks
from tasks.store.artifacts import ArtifactStore
from tasks.store.blocks import BlockDigests, DamagedObject
from tasks.store.dataset import read_parquet
from tasks.store.remote import CACHE_ENV, Remote, downloaded
from tasks.store.sources import MARKER, parquet_file
from tasks.store.verify import lineage_lines, verify
from tests.services import s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as env:
        yield env


@pytest.fixture
def bucket(s3, monkeypatch, tmp_path, request):
    for name, value in s3.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    prefix = request.node.name.replace("[", "-").replace("]", "")
    client = boto3.client("s3")
    return {"url": f"s3://{s3['bucket']}/{prefix}", "client": client, "bucket": s3["bucket"], "prefix": prefix}


def host(monkeypatch, tmp_path, name: str) -> None:
    """Act as another machine: its own working copies."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / name))


def keys(bucket) -> dict[str, bytes]:
    listed = bucket["client"].list_objects_v2(Bucket=bucket["bucket"], Prefix=bucket["prefix"] + "/")
    return {o["Key"][len(bucket["prefix"]) + 1:]: bucket["client"].get_object(Bucket=bucket["bucket"], Key=o["Key"])[
        "Body"].read() for o in listed.get("Contents", [])}


TABLE = pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})


def test_an_artifact_lands_in_the_bucket_and_another_host_reuses_it_from_there(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    store = ArtifactStore(bucket["url"])
    ref = store.put_table(TABLE, "raw", dataset="t")
    store.cache_put("raw", "k1", {"raw": ref})
    held = keys(bucket)
    assert {f"raw/{ref.sha256}.parquet", f"raw/{ref.sha256}.json", "_cache/raw/k1.json"} <= set(held)
    assert store.url(ref.path) == f"{bucket['url']}/raw/{ref.sha256}.parquet"

    host(monkeypatch, tmp_path, "b")
    other = ArtifactStore(bucket["url"])
    assert other.root != store.root and [p.name for p in other.root.rglob("*")] == [MARKER]  # nothing yet
    hit = other.cache_get("raw", "k1")
    assert hit is not None and hit["raw"].sha256 == ref.sha256
    assert not Path(hit["raw"].path).exists()  # a table is read where it is read, not fetched by the hit
    assert read_parquet(hit["raw"].path).to_pydict() == TABLE.to_pydict()  # read whole: fetched, then read
    assert open(hit["raw"].path, "rb").read() == held[f"raw/{ref.sha256}.parquet"]
    assert other.cache_get("raw", "no-such-key") is None


def test_bytes_changed_in_the_bucket_are_quarantined_and_the_cache_misses(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    store = ArtifactStore(bucket["url"])
    ref = store.put_table(TABLE, "raw", dataset="t")
    store.cache_put("raw", "k1", {"raw": ref})
    key = f"{bucket['prefix']}/raw/{ref.sha256}.parquet"
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=key, Body=b"tampered")
    checked, problems = verify(bucket["url"])
    assert checked == 1 and len(problems) == 1 and problems[0].startswith(f"{bucket['url']}/raw/{ref.sha256}")
    assert "do not match its name" in problems[0]

    host(monkeypatch, tmp_path, "b")  # a host that has no copy of its own reads the bucket's
    assert ArtifactStore(bucket["url"]).cache_get("raw", "k1") is None
    held = keys(bucket)
    assert f"raw/{ref.sha256}.parquet" not in held  # moved aside, kept
    assert [k for k in held if k.startswith("_quarantine/raw/")] and b"tampered" in held.values()


def test_verify_and_lineage_read_a_store_by_its_url(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    store = ArtifactStore(bucket["url"])
    raw = store.put_table(TABLE, "raw", dataset="t")
    split = store.put_table(pa.table({"i": [0, 1, 2]}), "split", dataset="t", parents=[raw])
    assert verify(bucket["url"]) == (2, [])
    lines = lineage_lines(bucket["url"], split.sha256[:10])
    assert lines[0].startswith("split") and f"{bucket['url']}/split/{split.sha256}.parquet" in lines[0]
    assert f"{bucket['url']}/raw/" in lines[1] and str(tmp_path) not in "\n".join(lines)
    assert verify(f"{bucket['url']}-nothing") == (0, [f"{bucket['url']}-nothing: no such artifact folder"])


def test_sidecars_name_every_host_that_produced_the_same_bytes(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    first = ArtifactStore(bucket["url"]).put_table(TABLE, "raw", dataset="t")
    host(monkeypatch, tmp_path, "b")
    again = ArtifactStore(bucket["url"]).put_table(TABLE, "raw", dataset="t")
    assert again.sha256 == first.sha256
    sidecar = json.loads(keys(bucket)[f"raw/{first.sha256}.json"])
    assert sidecar["artifact"]["sha256"] == first.sha256  # one record, kept from the first write


def test_a_url_with_credentials_or_a_scheme_pyarrow_cannot_open_is_refused(bucket):
    with pytest.raises(OptionError, match="credentials do not belong in the URL") as error:
        Remote(f"s3://key:{bucket['bucket']}@{bucket['bucket']}/x")
    assert "key:" not in str(error.value)
    with pytest.raises(OptionError, match="not a storage URL"):
        Remote("nosuch://bucket/x")


def test_a_table_in_a_bucket_is_downloaded_to_be_read(bucket, tmp_path):
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=f"{bucket['prefix']}/houses.csv", Body=b"a,b\n1,2\n")
    local = downloaded(f"{bucket['url']}/houses.csv", tmp_path / "tables")
    assert local.name == "houses.csv" and local.read_bytes() == b"a,b\n1,2\n"
    with pytest.raises(DataError, match="no such object"):
        downloaded(f"{bucket['url']}/nothing.csv", tmp_path / "tables")


def test_block_digests_do_not_depend_on_how_the_bytes_were_cut_into_writes():
    data = random.Random(3).randbytes(10_000)
    digests, at = BlockDigests(1024), 0
    for size in [1, 1023, 1024, 3000, 7, 4945]:
        digests.update(data[at:at + size])
        at += size
    result = digests.result()
    assert result.size == len(data) and len(result.sha256) == 10
    assert list(result.sha256) == [hashlib.sha256(data[i:i + 1024]).hexdigest() for i in range(0, len(data), 1024)]
    assert BlockDigests(1024).result().sha256 == (hashlib.sha256(b"").hexdigest(),)


def _many_groups(store: ArtifactStore):
    """A table of 40 row groups whose last 4 hold the test rows."""
    rng = random.Random(5)
    batches = [pa.record_batch({"row_id": list(range(g * 500, g * 500 + 500)),
                                "split": ["test" if g >= 36 else "train"] * 500,
                                "x": [rng.random() for _ in range(500)]}) for g in range(40)]
    return store.put_batches(iter(batches), "scaled", dataset="t"), pa.Table.from_batches(batches)


def _cached_by_host_a(bucket, monkeypatch, tmp_path):
    """Host a's store, with that table written (blocks of 8 KiB) and cached under "k1"."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 8192)
    host(monkeypatch, tmp_path, "a")
    store = ArtifactStore(bucket["url"])
    ref, table = _many_groups(store)
    store.cache_put("scaled", "k1", {"scaled": ref})
    return store, ref, table


def test_a_slice_of_a_table_in_the_bucket_is_read_by_range_each_block_checked(bucket, monkeypatch, tmp_path):
    store, ref, table = _cached_by_host_a(bucket, monkeypatch, tmp_path)
    recorded = store.record(ref).blocks
    size = len(keys(bucket)[f"scaled/{ref.sha256}.parquet"])
    assert recorded.size == size and len(recorded.sha256) == -(-size // 8192) > 8

    host(monkeypatch, tmp_path, "b")
    hit = ArtifactStore(bucket["url"]).cache_get("scaled", "k1")["scaled"]
    monkeypatch.setattr(blocks, "FETCHED", {"blocks": 0, "bytes": 0})
    test = read_parquet(hit.path, filters=[("split", "=", "test")])
    assert test.to_pydict() == table.slice(36 * 500).to_pydict()
    assert not Path(hit.path).exists()  # never fetched whole
    assert 0 < blocks.FETCHED["bytes"] < size / 2  # the footer and the test groups' pages, not the rest


def test_a_block_changed_in_the_bucket_fails_its_read_naming_it_and_is_moved_aside(bucket, monkeypatch, tmp_path):
    _, ref, _ = _cached_by_host_a(bucket, monkeypatch, tmp_path)
    key = f"{bucket['prefix']}/scaled/{ref.sha256}.parquet"
    damaged = bytearray(keys(bucket)[f"scaled/{ref.sha256}.parquet"])
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the block's digest can tell
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=key, Body=bytes(damaged))

    host(monkeypatch, tmp_path, "b")
    other = ArtifactStore(bucket["url"])
    hit = other.cache_get("scaled", "k1")["scaled"]  # the size is right: the hit does not read the bytes
    block = len(damaged) // 2 // 8192 + 1
    with pytest.raises(DamagedObject, match=rf"scaled/{ref.sha256}.parquet: bytes .* \(block {block} of "):
        parquet_file(hit.path).read()
    held = keys(bucket)
    assert f"scaled/{ref.sha256}.parquet" not in held and bytes(damaged) in held.values()  # moved aside, kept
    assert other.cache_get("scaled", "k1") is None  # the next run writes it again


def test_a_table_fetched_whole_by_many_readers_at_once_is_downloaded_once_and_checked(bucket, monkeypatch, tmp_path):
    _, ref, table = _cached_by_host_a(bucket, monkeypatch, tmp_path)
    host(monkeypatch, tmp_path, "b")
    hit = ArtifactStore(bucket["url"]).cache_get("scaled", "k1")["scaled"]
    downloads, get = [], Remote.get
    monkeypatch.setattr(Remote, "get", lambda self, key, local: (downloads.append(key), get(self, key, local))[1])
    readers = [threading.Thread(target=lambda: ArtifactStore(bucket["url"]).here(hit, whole=True)) for _ in range(6)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert [k for k in downloads if k.endswith(".parquet")] == [f"scaled/{ref.sha256}.parquet"]
    assert read_parquet(hit.path).to_pydict() == table.to_pydict()


def test_a_whole_fetch_of_changed_bytes_of_the_same_size_fails_naming_them_and_moves_them_aside(bucket, monkeypatch,
                                                                                                 tmp_path):
    _, ref, _ = _cached_by_host_a(bucket, monkeypatch, tmp_path)
    damaged = bytearray(keys(bucket)[f"scaled/{ref.sha256}.parquet"])
    damaged[100] ^= 0xFF
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=f"{bucket['prefix']}/scaled/{ref.sha256}.parquet",
                                Body=bytes(damaged))
    host(monkeypatch, tmp_path, "b")
    other = ArtifactStore(bucket["url"])
    hit = other.cache_get("scaled", "k1")["scaled"]
    with pytest.raises(DamagedObject, match="no longer match its name"):
        other.here(hit, whole=True)
    assert not Path(hit.path).exists() and f"scaled/{ref.sha256}.parquet" not in keys(bucket)
    with pytest.raises(DataError, match="no longer in the bucket"):  # a reader that comes after
        read_parquet(hit.path)


def test_a_sidecar_without_block_digests_has_its_table_fetched_by_the_hit(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    store = ArtifactStore(bucket["url"])
    ref = store.put_table(TABLE, "raw", dataset="t")
    store.cache_put("raw", "k1", {"raw": ref})
    record = json.loads(keys(bucket)[f"raw/{ref.sha256}.json"])
    record["blocks"] = None  # as written before the digests were
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=f"{bucket['prefix']}/raw/{ref.sha256}.json",
                                Body=json.dumps(record).encode())
    host(monkeypatch, tmp_path, "b")
    hit = ArtifactStore(bucket["url"]).cache_get("raw", "k1")["raw"]
    assert Path(hit.path).exists()  # fetched and hashed whole, as before


def test_threads_opening_a_new_working_copy_at_once_all_find_its_marker(bucket, monkeypatch, tmp_path):
    failures = []

    def open_store():
        try:
            ArtifactStore(bucket["url"])
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            failures.append(error)

    for round_ in range(20):
        host(monkeypatch, tmp_path, f"h{round_}")
        threads = [threading.Thread(target=open_store) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures


def test_a_file_changed_in_the_bucket_is_fetched_once_found_out_and_moved_aside(bucket, monkeypatch, tmp_path):
    host(monkeypatch, tmp_path, "a")
    (tmp_path / "m.keras").write_bytes(b"weights" * 100)
    store = ArtifactStore(bucket["url"])
    ref = store.put_file(tmp_path / "m.keras", "model", dataset="t")
    store.cache_put("model", "k1", {"model": ref})
    bucket["client"].put_object(Bucket=bucket["bucket"], Key=f"{bucket['prefix']}/model/{ref.sha256}.keras",
                                Body=b"WEIGHTS" * 100)  # same size: only the hash can tell
    host(monkeypatch, tmp_path, "b")
    warned = []
    assert ArtifactStore(bucket["url"]).cache_get("model", "k1", warn=lambda *a: warned.append(a[0] % a[1:])) is None
    assert f"model/{ref.sha256}.keras changed in the bucket since it was written" in warned[0]
    held = keys(bucket)
    assert f"model/{ref.sha256}.keras" not in held and b"WEIGHTS" * 100 in held.values()
