"""The data stages alone on all 70,000 Fashion-MNIST images: load, validate, split, scale,
each writing its Parquet artifact (no Prefect, no training). Prints one JSON line."""
import json
import sys
import tempfile
import time

start = time.perf_counter()
from tasks.checks.gx import _gx  # noqa: E402
from tasks.stages.load import load_fashion_mnist  # noqa: E402
from tasks.stages.scale import feature_names, scale  # noqa: E402
from tasks.stages.split import split  # noqa: E402
from tasks.stages.validate import validate_raw, validate_scaled, validate_split  # noqa: E402
from tasks.store.artifacts import ArtifactStore  # noqa: E402
from tasks.store.dataset import to_arrow  # noqa: E402

_gx()  # Great Expectations' import and context, once per process
imported = time.perf_counter()
store, times = ArtifactStore(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()), {}


def timed(name, fn):
    t = time.perf_counter()
    out = fn()
    times[name] = times.get(name, 0.0) + time.perf_counter() - t
    return out


raw, _ = timed("load", load_fashion_mnist)
timed("write", lambda: store.put_table(to_arrow(raw), "raw"))
timed("validate", lambda: validate_raw(raw))
index = timed("split", lambda: split(raw))
timed("write", lambda: store.put_table(to_arrow(index), "split"))
timed("validate", lambda: validate_split(index, len(raw)))
scaled, scaler, *_ = timed("scale", lambda: scale(raw, index))
timed("validate", lambda: validate_scaled(scaled))
timed("write", lambda: store.put_table(to_arrow(scaled), "scaled"))
timed("write", lambda: store.put_table(scaler.to_arrow(feature_names(scaled)), "scaler"))
print(json.dumps({"import_seconds": imported - start, "stages": times, "seconds": sum(times.values())}))
