"""Serve the ZenML dashboard offline on 127.0.0.1 (ZenML's local daemon server), or stop it.

python -m tools.zenml_server up [--port 8237]
python -m tools.zenml_server down
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import httpx

from tools._cli import bootstrap, run_cli

ZENML = str(Path(sys.executable).with_name("zenml"))


def _skip_onboarding(url: str) -> None:
    """A fresh server opens on an onboarding survey; mark it done for the local default user."""
    try:
        token = httpx.post(f"{url}/api/v1/login", data={"username": "default", "password": ""}, timeout=10)
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        body = {"user_metadata": {"finished_onboarding_survey": True}}
        httpx.put(f"{url}/api/v1/current-user", json=body, headers=headers, timeout=10).raise_for_status()
    except (httpx.HTTPError, KeyError) as exc:
        click.echo(f"Note: could not skip the dashboard's onboarding form ({exc}); fill it in once.", err=True)


@click.group()
def main() -> None:
    """Local ZenML dashboard."""


@main.command()
@click.option("--port", default=8237, show_default=True)
def up(port: int) -> None:
    bootstrap()
    command = [ZENML, "login", "--local", "--port", str(port), "--ip-address", "127.0.0.1"]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"`{' '.join(command)}` failed with exit code {result.returncode}")
    url = f"http://127.0.0.1:{port}"
    _skip_onboarding(url)
    click.echo(f"ZenML dashboard: {url} (user 'default', empty password). Stop it with `poe local-zenml-server-down`.")


@main.command()
def down() -> None:
    bootstrap()
    subprocess.run([ZENML, "logout", "--local"], check=False)


if __name__ == "__main__":
    run_cli(main)
