"""The production twin: each managed service of the EKS stack as a real local process.

Why: offline checks of the EKS configuration (schemas, renders) passed while four
blockers would have stopped the first deploy. The twin runs the services the EKS
configuration talks to, speaking the same protocols, so the same clients and config
files meet a real server and only endpoints and credentials differ:

- ElastiCache Redis (TLS + AUTH)  -> redis-server on a TLS-only port with a password,
  its certificates made by `openssl` at first start (a CA and a server certificate
  for 127.0.0.1/localhost); clients trust the CA through SSL_CERT_FILE, so
  feature_store.eks.yaml's `ssl=true` connection string is used unchanged;
- RDS PostgreSQL                   -> Debian's PostgreSQL server, own data directory and
  port, password (scram-sha-256) auth over TCP only;
- S3                               -> moto in server mode (in memory: a restart of the
  S3 twin empties it, as a fresh bucket would be, and `up` then empties the MLflow
  database with it, so no run names an artifact that is gone);
- the MLflow server on EKS         -> `mlflow server --serve-artifacts` with the
  PostgreSQL twin as backend store and the S3 twin as artifact destination, configured
  as the EKS Deployment configures it (MLFLOW_BACKEND_STORE_URI,
  MLFLOW_ARTIFACTS_DESTINATION, HOME); a process of this environment, or, when the
  config's `mlflow_container` says how, the same command inside the image the
  Deployment runs (deployment.twin_images builds that wrapper: this domain package
  knows no container engine).

Everything lives under one home directory (CHURN_TWIN_HOME, default
CHURN_HOME/twin) with its own ports (CHURN_TWIN_*_PORT); credentials are generated at
first start and kept in the home's credentials.json (mode 0600), so `down` and `env`
find the twin that `up` started. PostgreSQL refuses to run as root: as root the data
directory is given to the `postgres` system user (Debian's package creates it) and
the server runs under `runuser`; every ancestor of the home must then be
traversable by that user, which start() checks and names.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import redis

from churn.settings import get_settings

BUCKET: Final = "churn-twin"
REGION: Final = "us-east-1"
POSTGRES_USER: Final = "churn"
POSTGRES_DB: Final = "mlflow"
POSTGRES_SYSTEM_USER: Final = "postgres"
DEFAULT_PORTS: Final = {"redis": 6391, "postgres": 55432, "s3": 5055, "mlflow": 5051}
SERVICES: Final = ("redis", "postgres", "s3", "mlflow")


class TwinError(RuntimeError):
    """A twin service could not be found, started, reached or stopped."""


@dataclass(frozen=True)
class ContainerCommand:
    """A service's command wrapped to run in a container, in the foreground.

    Why foreground: its output lands in the service's log and its pid in the pid file,
    as a process's would; `stop` removes the container itself (signalling the engine's
    client alone could leave the container running).
    """

    argv: tuple[str, ...]
    # The engine client's own settings. No secrets: the service's variables reach the
    # container by name (`-e NAME`) from the client's environment, never on disk.
    env: Mapping[str, str]
    stop: tuple[str, ...]


# (command, environment) of a service -> how to run it in a container.
Containerize = Callable[[Sequence[str], Mapping[str, str]], ContainerCommand]


@dataclass(frozen=True)
class Credentials:
    """Secrets of one twin, generated once and kept beside its data."""

    redis_password: str
    postgres_password: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh random secrets (hex: safe inside URLs and Feast's connection string)."""
        return cls(
            redis_password=secrets.token_hex(16),
            postgres_password=secrets.token_hex(16),
            s3_access_key="twin" + secrets.token_hex(8),
            s3_secret_key=secrets.token_hex(20),
        )


@dataclass(frozen=True)
class TwinConfig:
    """Where the twin lives and on which ports its services listen."""

    home: Path
    redis_port: int
    postgres_port: int
    s3_port: int
    mlflow_port: int
    host: str = "127.0.0.1"
    # How the MLflow server runs in a container (None: a process of this environment).
    mlflow_container: Containerize | None = None

    def dir(self, service: str) -> Path:
        """Data and log directory of one service."""
        return self.home / service

    @property
    def credentials_file(self) -> Path:
        """Where the twin's generated secrets are kept."""
        return self.home / "credentials.json"

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the Redis server certificate."""
        return self.dir("tls") / "ca.crt"

    @property
    def s3_endpoint(self) -> str:
        """The S3 twin's endpoint URL (MLFLOW_S3_ENDPOINT_URL, boto3, rclone)."""
        return f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        """The MLflow server's tracking URI."""
        return f"http://{self.host}:{self.mlflow_port}"


def config_from_env(environ: Mapping[str, str] | None = None) -> TwinConfig:
    """The twin of CHURN_TWIN_HOME and CHURN_TWIN_{REDIS,POSTGRES,S3,MLFLOW}_PORT."""
    env = os.environ if environ is None else environ
    home = env.get("CHURN_TWIN_HOME") or str(get_settings().home / "twin")
    ports = {
        name: int(env.get(f"CHURN_TWIN_{name.upper()}_PORT", default))
        for name, default in DEFAULT_PORTS.items()
    }
    return TwinConfig(
        home=Path(home).resolve(),
        redis_port=ports["redis"],
        postgres_port=ports["postgres"],
        s3_port=ports["s3"],
        mlflow_port=ports["mlflow"],
    )


def credentials(cfg: TwinConfig) -> Credentials:
    """The twin's secrets: read from its home, or generated and written on first use."""
    if cfg.credentials_file.exists():
        return Credentials(**json.loads(cfg.credentials_file.read_text()))
    cfg.home.mkdir(parents=True, exist_ok=True)
    creds = Credentials.generate()
    fd = os.open(cfg.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(creds), out)
    return creds


def postgres_uri(cfg: TwinConfig, creds: Credentials) -> str:
    """SQLAlchemy URI of the MLflow database (what Secret churn-mlflow-db holds on EKS)."""
    return (
        f"postgresql://{POSTGRES_USER}:{creds.postgres_password}"
        f"@{cfg.host}:{cfg.postgres_port}/{POSTGRES_DB}"
    )


def s3_env(cfg: TwinConfig, creds: Credentials) -> dict[str, str]:
    """AWS SDK variables that point boto3, s3fs and MLflow at the S3 twin."""
    return {
        "AWS_ACCESS_KEY_ID": creds.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": creds.s3_secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": cfg.s3_endpoint,
        "MLFLOW_S3_ENDPOINT_URL": cfg.s3_endpoint,
    }


def client_env(cfg: TwinConfig, creds: Credentials) -> dict[str, str]:
    """The environment a process of the EKS configuration needs to run on the twin.

    The CHURN_* names are the ones the EKS ConfigMap and Secrets set; SSL_CERT_FILE
    makes the twin's CA the trust store, in place of the public CAs ElastiCache's
    certificate chains to.
    """
    return {
        **s3_env(cfg, creds),
        "CHURN_REDIS_HOST": cfg.host,
        "CHURN_REDIS_PORT": str(cfg.redis_port),
        "CHURN_REDIS_PASSWORD": creds.redis_password,
        "CHURN_REDIS_DB": "0",
        "CHURN_S3_BUCKET": BUCKET,
        "CHURN_MLFLOW_TRACKING_URI": cfg.mlflow_uri,
        # For the ZenML secret stacks/twin.yaml's tracker reads (ZenML requires one for
        # a remote URI); the twin's MLflow server has no auth and ignores them.
        "MLFLOW_TRACKING_USERNAME": "twin",
        "MLFLOW_TRACKING_PASSWORD": "unchecked",
        "SSL_CERT_FILE": str(cfg.ca_file),
    }


# ---------------------------------------------------------------- processes


def _port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(probe: Callable[[], bool], what: str, wait_s: float, log: Path) -> None:
    """Poll probe until it is true; TwinError naming the log when it never is."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise TwinError(f"{what} did not come up within {wait_s}s; {log}:\n{tail}")


def _spawn(args: list[str], log: Path, pid_file: Path, env: Mapping[str, str]) -> None:
    """Run a foreground server in its own session, output to log, pid to pid_file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))


def _kill(pid_file: Path, wait_s: float = 15.0) -> None:
    """SIGTERM the process group recorded in pid_file, then SIGKILL after wait_s."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pid_file.unlink(missing_ok=True)
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
    raise TwinError(f"process {pid} ({pid_file}) survived SIGKILL")


def _run(args: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
    """Run a setup command; TwinError with its output when it fails."""
    result = subprocess.run(
        args, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise TwinError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")


# ---------------------------------------------------------------- Redis (TLS + AUTH)


def make_certificates(cfg: TwinConfig) -> None:
    """A CA and a server certificate for 127.0.0.1 and localhost, once per twin home."""
    tls = cfg.dir("tls")
    if (tls / "server.crt").exists():
        return
    tls.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TwinError("openssl was not found on PATH (apt-get install openssl)")
    ca_key, ca_crt = tls / "ca.key", cfg.ca_file
    key, csr, crt = tls / "server.key", tls / "server.csr", tls / "server.crt"
    ext = tls / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
          "-subj", "/CN=churn twin CA", "-keyout", str(ca_key), "-out", str(ca_crt)],
         "openssl CA")  # fmt: skip
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
          "-keyout", str(key), "-out", str(csr)], "openssl server key")  # fmt: skip
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(crt)],
         "openssl server certificate")  # fmt: skip


def redis_client(cfg: TwinConfig, creds: Credentials) -> redis.Redis:
    """A TLS client that verifies the twin's CA and authenticates, as Feast's does."""
    return redis.Redis(
        host=cfg.host,
        port=cfg.redis_port,
        password=creds.redis_password,
        ssl=True,
        ssl_ca_certs=str(cfg.ca_file),
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )


def _redis_up(cfg: TwinConfig, creds: Credentials) -> bool:
    try:
        return bool(redis_client(cfg, creds).ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(cfg: TwinConfig, creds: Credentials, wait_s: float = 15.0) -> None:
    """redis-server with TLS on the twin's port and no plaintext port (port 0)."""
    if _redis_up(cfg, creds):
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise TwinError("redis-server was not found on PATH (apt-get install redis-server)")
    make_certificates(cfg)
    data, tls = cfg.dir("redis"), cfg.dir("tls")
    data.mkdir(parents=True, exist_ok=True)
    _run([binary,
          "--port", "0", "--tls-port", str(cfg.redis_port), "--bind", cfg.host,
          "--tls-cert-file", str(tls / "server.crt"), "--tls-key-file", str(tls / "server.key"),
          "--tls-ca-cert-file", str(cfg.ca_file), "--tls-auth-clients", "no",
          "--requirepass", creds.redis_password,
          "--dir", str(data), "--daemonize", "yes", "--pidfile", str(data / "redis.pid"),
          "--logfile", str(data / "redis.log"), "--save", "", "--appendonly", "no"],
         "redis-server")  # fmt: skip
    _wait(lambda: _redis_up(cfg, creds), "TLS redis-server", wait_s, data / "redis.log")


def stop_redis(cfg: TwinConfig) -> None:
    """Stop the twin's redis-server (by its pid file: no plaintext port to send SHUTDOWN)."""
    _kill(cfg.dir("redis") / "redis.pid")


# ---------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise TwinError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


def _as_postgres() -> list[str]:
    """Command prefix running as the postgres system user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError as e:
        raise TwinError("running as root needs the 'postgres' system user") from e
    return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--"]


def _check_traversable(path: Path) -> None:
    """Root only: every ancestor of path must let the postgres user through."""
    if os.geteuid() != 0:
        return
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise TwinError(
                f"{parent} is not traversable by the postgres user (mode "
                f"{oct(parent.stat().st_mode & 0o777)}); put the twin home elsewhere "
                "(CHURN_TWIN_HOME) or `chmod o+x` it"
            )


def _postgres_up(cfg: TwinConfig, creds: Credentials) -> bool:
    import psycopg2  # lazy: only the twin needs the driver in this process

    try:
        psycopg2.connect(postgres_uri(cfg, creds), connect_timeout=1).close()
    except psycopg2.OperationalError:
        return False
    return True


def start_postgres(cfg: TwinConfig, creds: Credentials, wait_s: float = 30.0) -> None:
    """initdb once (password auth, TCP on the twin's port), pg_ctl start, create the db."""
    if _postgres_up(cfg, creds):
        return
    bin_dir, prefix = postgres_bin_dir(), _as_postgres()
    base = cfg.dir("postgres")
    data, log = base / "data", base / "postgres.log"
    _check_traversable(base)
    base.mkdir(parents=True, exist_ok=True)
    if prefix:
        shutil.chown(base, POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER)
    if not (data / "PG_VERSION").exists():
        pwfile = base / "pwfile"
        pwfile.write_text(creds.postgres_password + "\n")
        if prefix:
            shutil.chown(pwfile, POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER)
        try:
            _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
                  "--pwfile", str(pwfile), "--auth", "scram-sha-256", "-E", "UTF8"],
                 "initdb")  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
    options = f"-p {cfg.postgres_port} -h {cfg.host} -k {base}"
    _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
          "-w", "-t", str(int(wait_s)), "start"], "pg_ctl start")  # fmt: skip
    _create_database(cfg, creds)
    _wait(lambda: _postgres_up(cfg, creds), "PostgreSQL", wait_s, log)


def _create_database(cfg: TwinConfig, creds: Credentials, *, drop: bool = False) -> None:
    """CREATE DATABASE mlflow unless it exists (the RDS instance's initial database);
    with `drop`, an existing one is dropped first."""
    import psycopg2

    uri = postgres_uri(cfg, creds).rsplit("/", 1)[0] + "/postgres"
    conn = psycopg2.connect(uri, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            if drop:
                cur.execute(f"DROP DATABASE IF EXISTS {POSTGRES_DB}")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {POSTGRES_DB}")
    finally:
        conn.close()


def stop_postgres(cfg: TwinConfig) -> None:
    """pg_ctl stop -m fast, when a cluster runs from the twin's data directory."""
    data = cfg.dir("postgres") / "data"
    if not (data / "postmaster.pid").exists():
        return
    _run([*_as_postgres(), str(postgres_bin_dir() / "pg_ctl"), "-D", str(data), "-m", "fast",
          "-w", "stop"], "pg_ctl stop")  # fmt: skip


# ---------------------------------------------------------------- S3 (moto)


def s3_client(cfg: TwinConfig, creds: Credentials):  # type: ignore[no-untyped-def]
    """A boto3 S3 client on the twin's endpoint (boto3 has no shipped types here)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint,
        aws_access_key_id=creds.s3_access_key,
        aws_secret_access_key=creds.s3_secret_key,
        region_name=REGION,
    )


def start_s3(cfg: TwinConfig, creds: Credentials, wait_s: float = 30.0) -> bool:
    """moto's server on the twin's S3 port, then the bucket the EKS stack names.

    True when the bucket had to be created: the S3 twin is empty (moto keeps nothing
    across a restart).
    """
    base = cfg.dir("s3")
    base.mkdir(parents=True, exist_ok=True)
    if not _port_open(cfg.host, cfg.s3_port):
        args = [sys.executable, "-m", "moto.server", "-H", cfg.host, "-p", str(cfg.s3_port)]
        _spawn(args, base / "moto.log", base / "moto.pid", {})
        _wait(lambda: _port_open(cfg.host, cfg.s3_port), "moto S3", wait_s, base / "moto.log")
    client = s3_client(cfg, creds)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if BUCKET in existing:
        return False
    client.create_bucket(Bucket=BUCKET)
    return True


def stop_s3(cfg: TwinConfig) -> None:
    """Stop moto (its content is in memory and goes with it)."""
    _kill(cfg.dir("s3") / "moto.pid")


# ---------------------------------------------------------------- MLflow server


def _mlflow_up(cfg: TwinConfig) -> bool:
    import requests

    try:
        return requests.get(f"{cfg.mlflow_uri}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def mlflow_command(cfg: TwinConfig) -> list[str]:
    """The MLflow Deployment's command (k8s/base/mlflow) on the twin's address and port,
    one worker (the twin serves one client at a time)."""
    return ["mlflow", "server", f"--host={cfg.host}", f"--port={cfg.mlflow_port}",
            "--workers=1", "--serve-artifacts"]  # fmt: skip


def mlflow_env(cfg: TwinConfig, creds: Credentials) -> dict[str, str]:
    """The MLflow container's environment as the EKS overlay renders it (backend from
    Secret churn-mlflow-db, artifacts and region from ConfigMap churn-mlflow), plus the
    S3 twin's endpoint and keys (IRSA's stand-in); the allowed Host headers are the
    twin's address (the cluster's are its Service names)."""
    return {
        **s3_env(cfg, creds),
        "MLFLOW_BACKEND_STORE_URI": postgres_uri(cfg, creds),
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlflow",
        "MLFLOW_SERVER_ALLOWED_HOSTS": f"{cfg.host}:*,localhost:*",
    }


_STOP_FILE: Final = "stop.json"


def start_mlflow(cfg: TwinConfig, creds: Credentials, wait_s: float = 120.0) -> None:
    """`mlflow server` as k8s/ runs it (--serve-artifacts), on PostgreSQL and S3 twins;
    in a container when cfg.mlflow_container says how."""
    if _mlflow_up(cfg):
        return
    # one that does not answer goes first: a stale container would hold the name, a
    # stale stop record would say a process is a container
    stop_mlflow(cfg)
    base = cfg.dir("mlflow")
    base.mkdir(parents=True, exist_ok=True)
    command, env = mlflow_command(cfg), mlflow_env(cfg, creds)
    if cfg.mlflow_container is None:
        args = [str(Path(sys.executable).with_name("mlflow")), *command[1:]]
        env["HOME"] = str(base)  # the container's HOME is the Deployment's (an emptyDir)
    else:
        wrapped = cfg.mlflow_container(command, env)
        args, env = list(wrapped.argv), {**env, **wrapped.env}
        stop = {"argv": list(wrapped.stop), "env": dict(wrapped.env)}
        (base / _STOP_FILE).write_text(json.dumps(stop))
    _spawn(args, base / "mlflow.log", base / "mlflow.pid", env)
    _wait(lambda: _mlflow_up(cfg), "MLflow server", wait_s, base / "mlflow.log")


def mlflow_in_container(cfg: TwinConfig) -> bool:
    """Whether the running MLflow server was started in a container (its stop record is
    there): a twin already up keeps the server it has, whatever cfg now asks."""
    return (cfg.dir("mlflow") / _STOP_FILE).exists()


def stop_mlflow(cfg: TwinConfig) -> None:
    """Stop the MLflow server, process or container, whoever started it (its state is in
    PostgreSQL and S3, which stay)."""
    stop_file = cfg.dir("mlflow") / _STOP_FILE
    if stop_file.exists():
        stop = json.loads(stop_file.read_text())
        _run(stop["argv"], "stopping the MLflow container", stop["env"])
        stop_file.unlink()
    _kill(cfg.dir("mlflow") / "mlflow.pid")


# ---------------------------------------------------------------- the whole twin


def up(cfg: TwinConfig) -> Credentials:
    """Start every twin service (dependencies first); returns the twin's credentials."""
    creds = credentials(cfg)
    start_redis(cfg, creds)
    start_postgres(cfg, creds)
    if start_s3(cfg, creds) and not _mlflow_up(cfg):
        # S3 came back empty: runs kept in PostgreSQL would name artifacts that are
        # gone (a champion no one can download), so the MLflow database starts empty too.
        _create_database(cfg, creds, drop=True)
    start_mlflow(cfg, creds)
    return creds


def down(cfg: TwinConfig) -> None:
    """Stop every twin service that runs (dependents first); the data stays in home."""
    stop_mlflow(cfg)
    stop_s3(cfg)
    stop_postgres(cfg)
    stop_redis(cfg)


# What reset() deletes: every service's data and the clients' state; the credentials
# and the TLS certificates stay (clients configured with them keep working).
STATE_DIRS: Final = ("redis", "postgres", "s3", "mlflow", "state", "zenml", "demo")


def reset(cfg: TwinConfig) -> None:
    """Stop the twin and delete its data (MLflow's database, the offline store, ZenML's
    store, the demo's folders): the next `up` is an empty production."""
    down(cfg)
    for name in STATE_DIRS:
        shutil.rmtree(cfg.home / name, ignore_errors=True)


def status(cfg: TwinConfig) -> dict[str, bool]:
    """Which services answer right now."""
    creds = credentials(cfg)
    return {
        "redis": _redis_up(cfg, creds),
        "postgres": _postgres_up(cfg, creds),
        "s3": _port_open(cfg.host, cfg.s3_port),
        "mlflow": _mlflow_up(cfg),
    }


def main(argv: list[str] | None = None, cfg: TwinConfig | None = None) -> int:
    """`python -m churn.twin up|down|reset|status|env`: MLflow as a process; the
    Makefile's twin-* targets pass the config of deployment.twin_images (its image)."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    cfg = cfg or config_from_env()
    if command == "up":
        started = time.monotonic()
        up(cfg)
        print(f"twin up in {time.monotonic() - started:.1f}s under {cfg.home}")  # noqa: T201
    elif command == "down":
        down(cfg)
    elif command == "status":
        states = status(cfg)
        for name, ok in states.items():
            print(f"{name:9s} {'up' if ok else 'down'}")  # noqa: T201
        return 0 if all(states.values()) else 1
    elif command == "reset":
        reset(cfg)
        print(f"twin stopped and emptied under {cfg.home}")  # noqa: T201
    elif command == "env":
        for name, value in client_env(cfg, credentials(cfg)).items():
            print(f"export {name}={value}")  # noqa: T201
    else:
        print(f"usage: python -m churn.twin up|down|reset|status|env (not {command!r})")  # noqa: T201
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
