"""The project starts its embedded MongoDB-wire server on demand, and the data survives a restart."""

from __future__ import annotations

from llm_engineering.domain.types import DataCategory
from llm_engineering.infrastructure.local_services import find_free_port, port_is_open
from llm_engineering.infrastructure.mongo.client import close_clients
from llm_engineering.infrastructure.mongo.server import embedded_server
from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse
from llm_engineering.settings import Settings


def test_warehouse_starts_embedded_server_on_demand_and_persists(tmp_path):
    port = find_free_port()
    settings = Settings(data_dir=tmp_path / "data", mongodb_uri=f"mongodb://127.0.0.1:{port}", mongodb_embedded=True)
    server = embedded_server(settings)
    assert server is not None and not port_is_open("127.0.0.1", port)
    try:
        warehouse = MongoWarehouse(settings=settings)
        user, created = warehouse.get_or_create_user("Ada Lovelace")  # first use starts the server
        assert created
        assert port_is_open("127.0.0.1", port)
        assert server.managed_pid() is not None
        assert (settings.warehouse_dir / f"{settings.mongodb_database}.db").exists()

        close_clients()
        assert server.stop()
        assert not port_is_open("127.0.0.1", port)

        again, created_again = MongoWarehouse(settings=settings).get_or_create_user("Ada Lovelace")
        assert not created_again and again.id == user.id  # same data file after the restart
        assert MongoWarehouse(settings=settings).count(DataCategory.USERS) == 1
    finally:
        close_clients()
        server.stop()


def test_remote_uri_is_never_started_locally(tmp_path):
    settings = Settings(data_dir=tmp_path, mongodb_uri="mongodb://db.example.org:27017")
    assert embedded_server(settings) is None
