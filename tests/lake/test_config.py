import pickle

import pytest

from lake.config import normalise_url, store_spec
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
