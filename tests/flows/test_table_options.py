"""The table options (--categorical, --numeric, --missing, --drop-constant) are a user's table's:
given for the course's datasets they are refused before anything runs, on the command line and
from a flow's parameters alike."""
from __future__ import annotations

import pytest

from flows.steps.pipeline import source_for, table_options
from tasks.core.errors import OptionError


@pytest.mark.parametrize("options, named", [
    (["--categorical", "region"], "--categorical"), (["--numeric", "zip"], "--numeric"),
    (["--missing", "impute"], "--missing impute"), (["--drop-constant"], "--drop-constant")])
def test_a_table_option_without_data_is_refused_naming_it(options, named, capfd, tmp_path):
    from flows.__main__ import main

    assert main(["regression", *options, "--artifacts", str(tmp_path / "a")]) == 2
    assert f"error: {named}: for your own table only (give it with --data)" in capfd.readouterr().err
    assert not (tmp_path / "a").exists()


def test_a_flow_given_table_parameters_for_the_course_s_data_refuses_them():
    with pytest.raises(OptionError, match="for your own table"):
        source_for("regression", None, None, table_options(missing="impute"))
    assert source_for("regression", "houses.csv", "price", table_options(["region"])).table.categorical == ("region",)
