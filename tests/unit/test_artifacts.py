"""Where the artifacts live (featurelake.artifacts): the root from the settings, the paths derived from it, and the
local-disk side of reading and writing them (the object store's side: tests/integration/test_artifacts_s3.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurelake.artifacts import ArtifactPath, artifacts_root, local_copy, location
from featurelake.config import load_settings
from featurelake.errors import ConfigError, InputError
from tests.conftest import REPO_ROOT


def settings_with(**env: str):
    return load_settings(environ={"FEATURELAKE_HOME": str(REPO_ROOT), "FEATURELAKE_ENV": "ci", **env})


@pytest.mark.parametrize(
    ("warehouse", "expected"),
    [
        ("s3a://lake/warehouse", "s3a://lake/artifacts"),
        ("s3a://lake/warehouse/", "s3a://lake/artifacts"),
        ("s3a://lake", "s3a://lake/artifacts"),
        ("s3a://lake/team/ml/warehouse", "s3a://lake/team/ml/artifacts"),
    ],
)
def test_an_s3a_warehouse_puts_the_artifacts_beside_it(warehouse, expected):
    root = artifacts_root(settings_with(FEATURELAKE__STORAGE__WAREHOUSE=warehouse))
    assert root.url == expected and root.remote and root.display == expected


def test_a_local_warehouse_keeps_them_in_the_state_folder(tmp_path):
    settings = settings_with(FEATURELAKE__STATE_DIR=str(tmp_path))
    root = artifacts_root(settings)
    assert root.path == tmp_path and not root.remote and root.display == tmp_path.as_uri()
    # what `make run` wrote before: the report under .state/reports, manifests under .state/manifests
    assert location(settings, settings.monitoring.report_dir, "reports").path == tmp_path / "reports"
    assert (root / "manifests" / "x.json").path == tmp_path / "manifests" / "x.json"


def test_the_setting_wins_over_the_warehouse(tmp_path):
    remote = settings_with(
        FEATURELAKE__STORAGE__WAREHOUSE="s3a://lake/wh", FEATURELAKE__STORAGE__ARTIFACTS="s3a://art/p/"
    )
    assert artifacts_root(remote).url == "s3a://art/p"
    local = settings_with(FEATURELAKE__STORAGE__WAREHOUSE="s3a://lake/wh", FEATURELAKE__STORAGE__ARTIFACTS="out/art")
    assert artifacts_root(local).path == REPO_ROOT / "out" / "art"  # relative to the repository, as every path
    assert location(remote, "s3a://reports/nightly", "reports").url == "s3a://reports/nightly"
    assert location(remote, None, "reports").url == "s3a://art/p/reports"


@pytest.mark.parametrize("value", ["s3://lake/artifacts", "gs://lake/x", "s3a://", "s3a://UPPER/x"])
def test_other_urls_are_refused_naming_the_setting(value):
    with pytest.raises(ConfigError) as exc:
        settings_with(FEATURELAKE__STORAGE__ARTIFACTS=value)
    assert "environment variable FEATURELAKE__STORAGE__ARTIFACTS: storage.artifacts" in str(exc.value)
    assert "a local folder or an s3a://bucket[/prefix] URL" in str(exc.value)


def test_local_files_written_listed_read_and_copied(tmp_path):
    settings = settings_with(FEATURELAKE__STATE_DIR=str(tmp_path / "state"))
    root = artifacts_root(settings)
    (root / "a" / "b.json").write_text('{"x": 1}')
    assert (root / "a" / "b.json").read_text() == '{"x": 1}'
    with pytest.raises(InputError, match="does not exist"):
        (root / "a" / "missing.json").read_text()
    with (root / "site").writing() as folder:
        assert folder == tmp_path / "state" / "site"  # a local folder is written in place
        (folder / "index.html").write_text("<p>i</p>")
        (folder / "v").mkdir()
        (folder / "v" / "p.html").write_text("<p>p</p>")
    assert (root / "site").files() == ["index.html", "v/p.html"]
    assert root.files() == ["a/b.json", "site/index.html", "site/v/p.html"]

    copy = local_copy(settings, (root / "site").path, str(tmp_path / "copy"))
    assert copy.files() == ["index.html", "v/p.html"] and (copy / "v" / "p.html").read_text() == "<p>p</p>"
    assert local_copy(settings, (root / "site").path, str(root.path / "site")).files() == ["index.html", "v/p.html"]
    with pytest.raises(InputError, match="give a local folder"):
        local_copy(settings, (root / "site").path, "s3a://lake/copy")
    with pytest.raises(InputError, match="exists and is not a folder"):
        local_copy(settings, (root / "site").path, str(root.path / "a" / "b.json"))
    with pytest.raises(InputError, match="exists and is not a folder"), (root / "a" / "b.json").writing():
        pass


def test_a_remote_path_has_no_local_path():
    path = ArtifactPath("s3a://lake/artifacts/x.json", settings_with())
    with pytest.raises(ValueError, match="not on the local disk"):
        _ = path.path
    assert path._bucket_key() == ("lake", "artifacts/x.json")


def test_data_docs_and_manifest_locations(tmp_path):
    from featurelake.offline.manifest import manifest_file
    from featurelake.validation.gate import data_docs_index, gx_root

    local = settings_with(FEATURELAKE__STATE_DIR=str(tmp_path))
    assert data_docs_index(local) == (tmp_path / "gx/uncommitted/data_docs/local_site/index.html").as_uri()
    assert gx_root(local) == str(tmp_path)  # GE's file context where it always was
    remote = settings_with(FEATURELAKE__STATE_DIR=str(tmp_path), FEATURELAKE__STORAGE__WAREHOUSE="s3a://lake/wh")
    assert data_docs_index(remote) == "s3a://lake/artifacts/gx/data_docs/index.html"
    scratch = Path(gx_root(remote))
    assert scratch.is_dir() and not scratch.is_relative_to(tmp_path)  # a scratch folder outside the state folder
    assert manifest_file(artifacts_root(remote), "jan").url == "s3a://lake/artifacts/manifests/jan.json"
