"""The local Redis server of ``featurelake services start --redis`` (the cluster environment's online store): started
once and reused, only its ACL user admitted (the default user off), its data kept across a stop and a start (the
append-only file), stopped by its recorded pid."""

from __future__ import annotations

import pytest

from tests.conftest import isolated_env
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def test_redis_service_admits_its_acl_user_only_and_keeps_its_data_across_a_restart(tmp_path, monkeypatch):
    import redis

    from featurelake.config import load_settings
    from featurelake.errors import ConfigError
    from featurelake.services.redis import redis_server

    port = free_port()
    settings = load_settings(
        environ=isolated_env(
            tmp_path,
            FEATURELAKE__SERVICES__REDIS__PORT=str(port),
            FEATURELAKE__SERVICES__REDIS__DATA_DIR=str(tmp_path / "redis"),
            FEATURELAKE__ONLINE_STORE__REDIS_USERNAME="features",
        )
    )
    server = redis_server(settings)
    monkeypatch.delenv("FEATURELAKE_REDIS_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="FEATURELAKE_REDIS_PASSWORD is not set"):
        server.start(settings)
    monkeypatch.setenv("FEATURELAKE_REDIS_PASSWORD", "pw-for-the-test")
    pid, started = server.start(settings)
    try:
        assert started and server.start(settings) == (pid, False)
        client = redis.Redis(port=port, username="features", password="pw-for-the-test")
        client.hset("fl:key", mapping={"v": "42"})
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert server.stop(settings) == pid and server.running_pid(settings) is None
        pid, started = server.start(settings)
        assert started
        assert redis.Redis(port=port, username="features", password="pw-for-the-test").hgetall("fl:key") == {
            b"v": b"42"
        }
        assert oct((tmp_path / "redis" / "users.acl").stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop(settings)
    assert server.running_pid(settings) is None
