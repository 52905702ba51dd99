import pickle
import re

import pytest

from lake.config import as_spec, normalise_url, store_spec
from lake.errors import ConfigError, LakeError


def test_default_is_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = store_spec(environ={})
    assert spec.url == f"file://{tmp_path}/lake-data"
    assert spec.protocol == "file"
    assert spec.root == f"{tmp_path}/lake-data"


def test_env_supplies_s3_settings():
    env = {
        "LAKE_URL": "s3://bucket/prefix/",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu-west-1",
    }
    spec = store_spec(environ=env)
    assert spec.url == "s3://bucket/prefix"
    assert (spec.endpoint_url, spec.key, spec.secret, spec.region) == (
        "http://127.0.0.1:9000",
        "k",
        "s",
        "eu-west-1",
    )
    assert spec.root == "bucket/prefix"
    assert spec.path("a", "b.json") == "bucket/prefix/a/b.json"


def test_arguments_override_environment():
    env = {"AWS_ACCESS_KEY_ID": "envk", "AWS_SECRET_ACCESS_KEY": "envs"}
    spec = store_spec("s3://b/p", key="k", secret="s", environ=env)
    assert (spec.key, spec.secret) == ("k", "s")


def test_secret_never_in_repr_and_spec_pickles():
    spec = store_spec("s3://b/p", key="k", secret="topsecret", environ={})
    assert "topsecret" not in repr(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://host/x", "not supported"), ("s3://", "no bucket"), ("gs://b/x", "not supported")],
)
def test_bad_urls_are_named(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        normalise_url(url)
    assert url in str(info.value)
    assert isinstance(info.value, LakeError) and isinstance(info.value, ValueError)


def test_half_credentials_refused():
    with pytest.raises(ConfigError, match="incomplete"):
        store_spec("s3://b/p", key="k", environ={})


def test_bad_endpoint_refused():
    with pytest.raises(ConfigError, match="http"):
        store_spec("s3://b/p", endpoint_url="localhost:9000", environ={})


def test_as_spec_takes_a_url_a_path_or_a_spec():
    from pathlib import Path

    spec = as_spec("s3://bucket/lake", endpoint_url="http://127.0.0.1:9", key="k", secret="s")
    assert as_spec(spec) is spec
    assert as_spec(Path("/tmp/a-lake"), environ={}).url == "file:///tmp/a-lake"


@pytest.mark.parametrize(
    ("lake", "options", "says"),
    [
        ("s3://bucket/lake", {"endpoint": "http://x"}, "unknown S3 option(s) endpoint"),
        ("s3://bucket/lake", {"key": "k"}, "S3 credentials are incomplete"),
        ("s3://", {}, "has no bucket"),
        ("ftp://host/lake", {}, "protocol 'ftp' is not supported"),
    ],
)
def test_as_spec_names_what_is_wrong(lake, options, says):

    with pytest.raises(ConfigError, match=re.escape(says)):
        as_spec(lake, environ={}, **options)


def test_as_spec_refuses_s3_options_beside_a_spec():

    spec = as_spec("s3://bucket/lake", environ={})
    with pytest.raises(ConfigError, match=r"S3 option\(s\) key given with a StoreSpec"):
        as_spec(spec, key="k")
