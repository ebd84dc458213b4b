"""A CLI run of each flow on good data ends cleanly: exit 0, the JSON line last on stdout, and no
warning, traceback or start-up chatter on stderr; the store it leaves holds no pickle."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


ROOT = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"warn|leaked|traceback|absl|oneDNN|Still processing|temporary server", re.IGNORECASE)


@pytest.mark.parametrize("flow", ["classification", "zoo", "search"])  # regression: test_flows.py's CLI test
def test_a_good_run_of_each_flow_ends_without_a_warning(flow, housing_csv, fashion_table, tmp_path):
    data = {"classification": ["--data", str(fashion_table), "--target", "label"]}.get(
        flow, ["--data", str(housing_csv), "--target", "MedHouseVal"])
    extra = {"zoo": ["--task", "regression", "--model", "mlp30,wide_deep"],
             "search": ["--n-iter", "2", "--workers", "2"]}.get(flow, [])
    artifacts = tmp_path / "a"
    run = subprocess.run([sys.executable, "-m", "flows", flow, *data, *extra, "--epochs", "1",
                          "--artifacts", str(artifacts), "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ, "PREFECT_LOGGING_LEVEL": "INFO"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["flow"] == flow
    noisy = [line for line in run.stderr.splitlines() if NOISE.search(line)]
    assert noisy == [], noisy
    if flow == "search":  # the two trials ran side by side, one in each worker process
        import pandas as pd

        trials = pd.read_parquet(next((artifacts / "search").glob("*.parquet")))
        assert trials["worker"].nunique() == 2, trials["worker"].tolist()
    kinds = {p.suffix for p in artifacts.rglob("*") if p.is_file() and not {"tensorboard", "data-docs"} & set(p.parts)}
    assert kinds <= {".parquet", ".json", ".png", ".keras", ".lock"}, kinds  # no pickle, nothing opaque
    if flow == "classification":  # the helper process rendered the Data Docs after replying, before it exited
        run_id = json.loads(run.stdout.strip().splitlines()[-1])["run_id"]
        pages = [page for point in ("raw", "split", "scaled")
                 for sidecar in (artifacts / f"validation-{point}").glob("*.json")
                 for page in json.loads(sidecar.read_text())["data_docs"]]
        assert len(pages) == 6 and all(f"/data-docs/{run_id}/validations/" in page for page in pages), pages
        assert all("Expectation Validation Result" in Path(page).read_text() for page in pages)
