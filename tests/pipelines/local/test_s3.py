"""The embedded S3 endpoint keeps its keys off rclone's command line (``ps`` shows every user's
command lines) and still checks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake.config import store_spec
from lake.errors import S3ServerError
from lake.storage import filesystem
from pipelines.local.s3 import EmbeddedS3, rclone_environment


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.parametrize("key", [None, 'lake-"quoted'])
def test_keys_are_not_on_the_command_line_and_still_checked(tmp_path: Path, key: str | None):
    with EmbeddedS3(tmp_path / "data", buckets=["lake"], key=key) as server:
        e = server.endpoint
        assert server.pid is not None
        cmdline = _cmdline(server.pid)
        assert b"serve\x00s3" in cmdline  # the rclone process itself
        assert e.key.encode() not in cmdline and e.secret.encode() not in cmdline
        assert b"auth-key" not in cmdline
        assert e.secret.encode() not in server.log.read_bytes()

        def spec(secret: str):
            return store_spec(
                "s3://lake/t",
                endpoint_url=e.endpoint_url,
                key=e.key,
                secret=secret,
                region=e.region,
                environ={},
            )

        fs = filesystem(spec(e.secret))
        fs.pipe_file("lake/t/x.bin", b"payload")
        assert fs.cat_file("lake/t/x.bin") == b"payload"
        wrong = filesystem(spec(e.secret + "x"))
        with pytest.raises(PermissionError):
            wrong.cat_file("lake/t/x.bin")
    assert server.pid is None  # stopped


def test_environment_quotes_the_pair_and_drops_other_rclone_variables():
    env = rclone_environment('k"1', "s/+=", {"PATH": "/bin", "RCLONE_AUTH_KEY": "evil,evil"})
    assert env == {"PATH": "/bin", "RCLONE_AUTH_KEY": '"k""1,s/+="'}
    with pytest.raises(S3ServerError, match="one line"):
        rclone_environment("k", "s\nRCLONE_X=1")
