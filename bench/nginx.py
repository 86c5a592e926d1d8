"""nginx from Debian as the fast upstream: the recorded JSON over TLS, watches proxied to bench.upstream.

`ensure_tools` installs nginx-light and wrk with apt-get when they are missing and the harness runs
as root (and may install); otherwise the harness falls back to bench.upstream and bench.loadgen.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

from bench.fixtures import WATCH_PATH
from bench.processes import die_with_parent

PACKAGES = {"nginx": "nginx-light", "wrk": "wrk"}

CONFIG = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    types {{ }}
    default_type application/json;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
    upstream events {{ server 127.0.0.1:{events_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location / {{ try_files $uri.json =404; }}
        location {watch_prefix} {{
            proxy_pass https://events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def ensure_tools(install: bool) -> list[str]:
    """Install what is missing when allowed; returns the notes to print (what was installed or why not)."""
    missing = [
        pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if not missing:
        return []
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return [f"not installed: {', '.join(missing)} (run as root with apt-get to install them)"]
    result = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        result = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return [f"apt-get install {' '.join(missing)}: " + ("done" if result.returncode == 0 else "failed")]


def nginx_path() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


async def start_nginx(
    workdir: Path, root: Path, cert: Path, key: Path, port: int, events_port: int
) -> asyncio.subprocess.Process:
    """nginx in the foreground on `port` (the caller stops it by terminating the process)."""
    conf_dir = workdir / "nginx"
    (conf_dir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(
        CONFIG.format(
            dir=conf_dir,
            port=port,
            events_port=events_port,
            cert=cert,
            key=key,
            root=root,
            watch_prefix=WATCH_PATH.rsplit("/", 1)[0] + "/",
        )
    )
    return await asyncio.create_subprocess_exec(
        nginx_path() or "nginx",
        "-c",
        str(conf),
        "-e",
        str(conf_dir / "error.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
