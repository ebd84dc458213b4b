"""Loading: the course's two datasets from their original files, or a user's own table.

Raw files are looked for, in order, in the cache folder (``data/``), in the mirror
folder named by ``DATA_MIRROR``, then at the public URL (downloads land in the cache).
Every file is checked against its known sha256 before it is used.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import os
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import DataError, InputError, OptionError
from tasks.core.raw_places import MIRROR_ENV, cache_dir
from tasks.stages import streamed
from tasks.stages.table import TableOptions, load_table
from tasks.store import lineage
from tasks.store.artifacts import ArtifactRef, ArtifactStore, sha256_file
from tasks.store.dataset import DatasetSpec, Frame, SplitRule, to_arrow
from tasks.store.remote import downloaded, is_url
from tasks.store.stage import StageRun, no_retry_on, reported


class RawDataError(InputError, RuntimeError):
    """A raw file is missing everywhere, or is present with the wrong checksum."""


@dataclass(frozen=True)
class SourceFile:
    name: str
    folder: str  # sub-folder of the cache and of the mirror
    sha256: frozenset[str]  # accepted checksums
    url: str


_FASHION_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FASHION_FILES = {
    key: SourceFile(name, "fashion-mnist", frozenset({digest}), _FASHION_URL + name)
    for key, name, digest in [
        ("train_images", "train-images-idx3-ubyte.gz",
         "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train_labels", "train-labels-idx1-ubyte.gz",
         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("test_images", "t10k-images-idx3-ubyte.gz",
         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("test_labels", "t10k-labels-idx1-ubyte.gz",
         "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ]
}
HOUSING_DATA = SourceFile("cal_housing.data", "california-housing",
                       frozenset({"a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214"}), "")
HOUSING_TGZ = SourceFile(
    "cal_housing.tgz", "california-housing",
    # the mirror's rebuilt archive, and the figshare original scikit-learn downloads
    frozenset({"13f461d5827cebfe074cf95c6cd71b0e98ed87130e4aafeac36e38cfee9801da",
               "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681"}),
    "https://ndownloader.figshare.com/files/5976036")

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_SPEC = DatasetSpec(
    name="fashion-mnist", task="classification", target="label", features=("image",),
    image_shape=(28, 28), classes=tuple(range(10)), feature_ranges={"*": (0, 255)},
    rows=70_000,
    split=SplitRule("head", valid_size=5_000, sizes={"train": 55_000, "valid": 5_000, "test": 10_000}))

HOUSING_FEATURES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup",
                    "Latitude", "Longitude")
HOUSING_SPEC = DatasetSpec(
    name="california-housing", task="regression", target="MedHouseVal", features=HOUSING_FEATURES,
    target_range=(0.14999, 5.00001), rows=20_640,
    # the real extent of each column in the 1990 census data (California block groups)
    feature_ranges={"MedInc": (0.4999, 15.0001), "HouseAge": (1, 52), "AveRooms": (0.5, 150),
                    "AveBedrms": (0.3, 40), "Population": (3, 40_000), "AveOccup": (0.5, 1_300),
                    "Latitude": (32.5, 42.0), "Longitude": (-124.4, -114.3)},
    split=SplitRule("random", test_seed=7, valid_seed=11, sizes={"train": 11_610, "valid": 3_870, "test": 5_160}))


# ---- finding and checking raw files -------------------------------------------------
def _checked(path: Path, raw: SourceFile) -> str:
    """The file's sha256, if it is one of the accepted ones; a clear error otherwise."""
    actual = sha256_file(path)
    if actual not in raw.sha256:
        raise RawDataError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {' or '.join(sorted(raw.sha256))}. "
            f"The file is corrupt or not the original; delete it or fix the source.")
    return actual


def _download(raw: SourceFile, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    with urllib.request.urlopen(raw.url, timeout=60) as response, open(tmp, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    try:
        digest = _checked(tmp, raw)
    except RawDataError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return digest


def locate(raw: SourceFile, download: bool = True) -> tuple[Path, str] | None:
    """(path, sha256) of a verified copy of ``raw``: cache, then mirror, then a download."""
    cached = cache_dir() / raw.folder / raw.name
    candidates = [cached]
    if os.environ.get(MIRROR_ENV):
        candidates.append(Path(os.environ[MIRROR_ENV]) / raw.folder / raw.name)
    for path in candidates:
        if path.is_file():
            return path, _checked(path, raw)
    if download and raw.url:
        try:
            return cached, _download(raw, cached)
        except OSError:
            return None
    return None


def _missing(files: list[SourceFile]) -> RawDataError:
    mirror = os.environ.get(MIRROR_ENV)
    return RawDataError(
        f"raw files not found: {', '.join(f.name for f in files)}. Looked in {cache_dir() / files[0].folder}, "
        f"in ${MIRROR_ENV} ({mirror + '/' + files[0].folder if mirror else 'not set'}) and at the public "
        f"URLs (unreachable). Set {MIRROR_ENV} to a folder holding {files[0].folder}/ with these files.")


# ---- the two datasets of the course ---------------------------------------------------
def parse_idx(blob: bytes, name: str = "idx file", ndim: int | None = None) -> np.ndarray:
    """Decode an idx file (the MNIST format): big-endian header, then uint8 data; a header that
    is not an idx header, or a count the data does not fill, is refused naming the file."""
    if len(blob) < 4 or blob[0] or blob[1] or blob[2] != 0x08 or not 1 <= blob[3] <= 4:
        raise DataError(f"{name}: not an idx file of bytes (its magic number is {blob[:4].hex() or 'missing'}, "
                        "expected 0000080N); the file is not the dataset's")
    if ndim is not None and blob[3] != ndim:
        raise DataError(f"{name}: an idx file of {blob[3]} dimensions where {ndim} are expected "
                        f"({'labels' if ndim == 1 else 'images'})")
    if len(blob) < 4 + 4 * blob[3]:
        raise DataError(f"{name}: the file ends inside its header ({len(blob)} bytes): truncated")
    dims = np.frombuffer(blob, dtype=">u4", count=blob[3], offset=4).astype(int)
    payload = len(blob) - 4 - 4 * blob[3]
    if payload != int(np.prod(dims)):
        raise DataError(f"{name}: its header promises {' x '.join(map(str, dims))} = {int(np.prod(dims))} bytes, "
                        f"the file holds {payload}: truncated, or the header is wrong")
    return np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * blob[3]).reshape(dims)


def _unzipped(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable gzip file ({error}); delete it so that it is fetched again") from None


def load_fashion_mnist() -> tuple[Frame, list[str]]:
    """70,000 images (60,000 train then 10,000 test) and the sha256 of each raw file."""
    paths = {key: locate(raw) for key, raw in FASHION_FILES.items()}
    missing = [FASHION_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise _missing(missing)
    arrays = {key: parse_idx(_unzipped(path), FASHION_FILES[key].name, 1 if key.endswith("labels") else 3)
              for key, (path, _) in paths.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{FASHION_FILES[part + '_labels'].name} holds {len(labels)} labels for the "
                            f"{len(images)} images of {FASHION_FILES[part + '_images'].name}: "
                            "the files do not belong together")
    X = np.concatenate([arrays["train_images"], arrays["test_images"]]).reshape(-1, 28 * 28)
    y = np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    split = np.array(["train"] * len(arrays["train_labels"]) + ["test"] * len(arrays["test_labels"]),
                     dtype=object)
    frame = Frame(FASHION_SPEC, X, y, np.arange(len(y), dtype=np.int64), split)
    return frame, [f"{FASHION_FILES[key].name}:{digest}" for key, (_, digest) in paths.items()]


HOUSING_COLUMNS = ("longitude", "latitude", "housingMedianAge", "totalRooms", "totalBedrooms", "population",
                   "households", "medianIncome", "medianHouseValue")  # StatLib's cal_housing.data


def housing_transform(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``fetch_california_housing`` transform of the StatLib columns."""
    columns_index = [8, 7, 2, 3, 4, 5, 6, 1, 0]
    cal = raw[:, columns_index]
    target, data = cal[:, 0] / 100000.0, cal[:, 1:].copy()
    data[:, 2] /= data[:, 5]  # AveRooms = rooms / households
    data[:, 3] /= data[:, 5]  # AveBedrms = bedrooms / households
    data[:, 5] = data[:, 4] / data[:, 5]  # AveOccup = population / households
    return data, target


def parse_housing(text: bytes, name: str) -> np.ndarray:
    """StatLib's comma-separated numbers, nine a row; what is not is refused naming the line."""
    lines = text.decode("ascii", errors="replace").splitlines()
    widths = np.array([line.count(",") + 1 for line in lines])
    wrong = np.flatnonzero(widths != len(HOUSING_COLUMNS))
    if len(wrong):
        raise DataError(f"{name}: line {wrong[0] + 1} has {widths[wrong[0]]} values where the file's rows have "
                        f"{len(HOUSING_COLUMNS)} ({', '.join(HOUSING_COLUMNS)}); {len(wrong)} such line(s)")
    try:
        raw = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", ndmin=2)
    except ValueError as error:
        raise DataError(f"{name}: {error}; every value must be a number") from None
    zero = np.flatnonzero(raw[:, HOUSING_COLUMNS.index("households")] == 0)
    if len(zero):
        raise DataError(f"{name}: households is 0 at line{'s' if len(zero) > 1 else ''} "
                        f"{', '.join(str(i + 1) for i in zero[:5])}: rooms, bedrooms and occupancy per household "
                        "divide by it")
    return raw


def load_california_housing() -> tuple[Frame, list[str]]:
    """20,640 block groups, 8 features, target in units of $100,000."""
    found = locate(HOUSING_DATA, download=False)
    if found is not None:
        text, source = found[0].read_bytes(), f"{HOUSING_DATA.name}:{found[1]}"
    else:
        found = locate(HOUSING_TGZ)
        if found is None:
            raise _missing([HOUSING_DATA, HOUSING_TGZ])
        with tarfile.open(found[0], mode="r:gz") as archive:
            text = archive.extractfile("CaliforniaHousing/cal_housing.data").read()
        source = f"{HOUSING_TGZ.name}:{found[1]}"
    X, y = housing_transform(parse_housing(text, source.split(":")[0]))
    return Frame(HOUSING_SPEC, X, y, np.arange(len(y), dtype=np.int64)), [source]



BUILTIN = {"fashion-mnist": load_fashion_mnist, "california-housing": load_california_housing}


# ---- the Prefect task ------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a flow's data comes from: a built-in dataset, or a user table and its target."""

    dataset: str | None = None
    path: str | None = None
    target: str | None = None
    task: str = "classification"
    table: TableOptions = TableOptions()  # how a user's table is read (its columns, missing values)
    stream: bool = False  # every stage a row group at a time (tasks/stages/streamed.py)

    @functools.cached_property
    def local(self) -> Path:
        """The user's table as a local file: a table named by a URL is downloaded, once, so that what
        is hashed for the cache key is what is read."""
        return downloaded(self.path, cache_dir() / "tables") if is_url(self.path) else Path(self.path)

    def read(self) -> tuple[Frame, list[str]]:
        if self.path is not None:
            if not self.target:
                raise DataError("--data needs --target COLUMN (the label or value column)")
            return load_table(self.local, self.target, self.task, self.table)
        if self.dataset not in BUILTIN:
            raise OptionError(f"unknown dataset {self.dataset!r}; built in: {sorted(BUILTIN)}")
        return BUILTIN[self.dataset]()

    def identity(self) -> list[str]:
        """What the raw artifact is made from, known before reading it (the cache key's input)."""
        if self.path is not None:
            path = self.local
            return [f"{path.name}:{sha256_file(path) if path.is_file() else 'missing'}"]
        return [self.dataset or ""]  # the accepted checksums live in this module, so in its code hash


@task(name="load", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE,
      retry_condition_fn=no_retry_on(InputError, ValueError, FileNotFoundError))
def load_task(source: Source, artifacts: str, force: bool = False) -> ArtifactRef:
    """Read the raw files (checksums verified) into the raw Parquet artifact."""
    params = dataclasses.asdict(source)
    if source.table == TableOptions():  # the key of a run without table options stays as it was
        del params["table"]
    if not source.stream:
        del params["stream"]
    run = StageRun(ArtifactStore(artifacts), "raw", __name__, parents=source.identity(), params=params)

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        if source.stream:
            return {"raw": streamed.put_raw(run, source)}
        frame, files = source.read()
        # the sidecar names the verified raw files themselves
        run.parents = [lineage.RawFile(*f.split(":")) for f in files]
        return {"raw": run.put_table(to_arrow(frame))}

    return reported(run.run(produce, force)["raw"], run)
