"""The store on object storage, against a real S3 API (moto's server on 127.0.0.1): two hosts are
two working copies (KERAS_FLOWS_CACHE) of one bucket."""
from __future__ import annotations

import json

import boto3
import pyarrow as pa
import pytest

from tasks.core.errors import DataError, OptionError
from tasks.store.artifacts import ArtifactStore
from tasks.store.remote import CACHE_ENV, Remote, downloaded
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
    assert other.root != store.root and not other.root.exists()
    hit = other.cache_get("raw", "k1")
    assert hit is not None and hit["raw"].sha256 == ref.sha256
    assert open(hit["raw"].path, "rb").read() == held[f"raw/{ref.sha256}.parquet"]  # fetched from the bucket
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
