"""What ships: the install script, systemd units and Kubernetes manifests hold together."""

from __future__ import annotations

import configparser
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from advisor.cli import serve_command as advisor_serve
from kubensage_agent.cli import run as agent_run
from relay.cli import export_config, serve_command

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
INSTALL = DEPLOY / "install.sh"


def default(command: click.Command, name: str) -> Any:
    return next(p.default for p in command.params if p.name == name)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# -- install script --------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "kubensage-agent-9.9.9-linux-amd64"
    folder.mkdir()
    executable = folder / "kubensage-agent"
    executable.write_text("#!/bin/sh\necho kubensage-agent 9.9.9\n")
    executable.chmod(0o755)
    (folder / "_internal").mkdir()
    (folder / "_internal" / "lib.so").write_bytes(b"\x7fELF fake")
    archive = tmp_path / f"{folder.name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args, "--root", str(root), "--no-systemctl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_install_is_complete_and_idempotent(tmp_path: Path, bundle: Path) -> None:
    root = tmp_path / "root"
    first = install(root, "agent", "--bundle", str(bundle), "--relay-address", "relay:9190")
    assert first.returncode == 0, first.stderr
    assert (root / "opt/kubensage/agent/kubensage-agent").exists()
    link = root / "usr/local/bin/kubensage-agent"
    assert str(link.readlink()) == "/opt/kubensage/agent/kubensage-agent"
    config = yaml.safe_load((root / "etc/kubensage/agent.yaml").read_text())
    assert config["relay-address"] == "relay:9190" and config["spool"] is True
    assert set(config) <= {p.name.replace("_", "-") for p in agent_run.params if p.name}
    agent_id = (root / "var/lib/kubensage/agent-id").read_text().strip()
    assert len(agent_id) == 36
    checks = (root / "etc/kubensage/checks.d").stat()
    assert checks.st_mode & 0o7777 == 0o755  # what the agent demands of its check directory
    assert checks.st_uid == 0 or os.geteuid() != 0
    unit = (root / "etc/systemd/system/kubensage-agent.service").read_text()
    assert "ExecStart=/usr/local/bin/kubensage-agent run --config /etc/kubensage/agent.yaml" in unit

    before = snapshot(root)
    second = install(root, "agent", "--bundle", str(bundle))
    assert second.returncode == 0, second.stderr
    assert "already at this version" in second.stdout
    assert snapshot(root) == before

    third = install(root, "agent", "--bundle", str(bundle), "--relay-address", "other:9190")
    assert third.returncode == 0
    assert yaml.safe_load((root / "etc/kubensage/agent.yaml").read_text())["relay-address"] == (
        "other:9190"
    )
    assert (root / "var/lib/kubensage/agent-id").read_text().strip() == agent_id


def test_preprovisioned_agent_id_is_kept(tmp_path: Path, bundle: Path) -> None:
    root = tmp_path / "root"
    (root / "var/lib/kubensage").mkdir(parents=True)
    (root / "var/lib/kubensage/agent-id").write_text("node-0042\n")
    assert install(root, "agent", "--bundle", str(bundle), "--relay-address", "r:1").returncode == 0
    assert (root / "var/lib/kubensage/agent-id").read_text() == "node-0042\n"


def test_uninstall_keeps_state_and_purge_removes_it(tmp_path: Path, bundle: Path) -> None:
    root = tmp_path / "root"
    install(root, "agent", "--bundle", str(bundle), "--relay-address", "relay:9190")
    assert install(root, "agent", "--uninstall").returncode == 0
    assert not (root / "opt/kubensage/agent").exists()
    assert not (root / "usr/local/bin/kubensage-agent").is_symlink()
    assert not (root / "etc/systemd/system/kubensage-agent.service").exists()
    assert (root / "etc/kubensage/agent.yaml").exists()
    assert (root / "var/lib/kubensage/agent-id").exists()
    assert install(root, "agent", "--uninstall", "--purge").returncode == 0
    assert not (root / "etc/kubensage").exists() and not (root / "var/lib/kubensage").exists()


def test_purge_keeps_check_scripts_an_operator_put_there(tmp_path: Path, bundle: Path) -> None:
    root = tmp_path / "root"
    install(root, "agent", "--bundle", str(bundle), "--relay-address", "relay:9190")
    (root / "etc/kubensage/checks.d/ntp").write_text("#!/bin/sh\nexit 0\n")
    assert install(root, "agent", "--uninstall", "--purge").returncode == 0
    assert (root / "etc/kubensage/checks.d/ntp").exists()
    assert not (root / "etc/kubensage/agent.yaml").exists()


def test_install_refuses_a_bundle_without_the_program(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = install(tmp_path / "root", "agent", "--bundle", str(empty), "--relay-address", "r:1")
    assert result.returncode == 2 and "no kubensage-agent executable" in result.stderr


# -- systemd ---------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def test_systemd_units_run_the_installed_binaries_hardened() -> None:
    agent, relay = unit("kubensage-agent.service"), unit("kubensage-relay.service")
    assert agent["Service"]["ExecStart"].startswith("/usr/local/bin/kubensage-agent run ")
    assert relay["Service"]["ExecStart"].startswith("/usr/local/bin/kubensage-relay serve ")
    assert agent["Service"]["User"] == "root"
    assert relay["Service"]["DynamicUser"] == "yes"
    for service in (agent["Service"], relay["Service"]):
        assert service["Restart"] == "on-failure"
        assert service["NoNewPrivileges"] == "yes"
        assert service["ProtectSystem"] == "strict"
    # the agent reads /proc and /sys: it must not hide them
    assert "ProtectProc" not in agent["Service"] and "ProtectKernelTunables" not in agent["Service"]
    # nor hide mount points it statfs's, nor refuse the read-only adjtimex
    assert agent["Service"]["ProtectHome"] == "read-only"
    assert "ProtectClock" not in agent["Service"]
    assert agent["Service"]["ReadWritePaths"] == "/var/lib/kubensage"
    # check scripts: their directory exists, they may drop to nobody, their forks are bounded
    assert "kubensage/checks.d" in agent["Service"]["ConfigurationDirectory"].split()
    assert agent["Service"]["ConfigurationDirectoryMode"] == "0755"
    assert {"CAP_SETUID", "CAP_SETGID"} <= set(agent["Service"]["CapabilityBoundingSet"].split())
    assert int(agent["Service"]["TasksMax"]) > 0


# -- Kubernetes ------------------------------------------------------------------------


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "prometheus-scrape-config.yaml"):
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def args_of(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)


def test_every_manifest_validates_against_the_kubernetes_schema() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for doc in documents():
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # a CRD: not in the core schema
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        checked += 1
    assert checked >= 9


def test_agent_daemonset_mounts_what_it_reads_and_probes_its_own_port() -> None:
    daemonset = find("DaemonSet", "kubensage-agent")
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = args_of(container)
    host_root = args["host-root"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == set(volumes)
    for name, mount in mounts.items():
        volume = volumes[name]
        if "hostPath" in volume and name != "state":
            assert mount["mountPath"] == (host_root + volume["hostPath"]["path"]).rstrip("/")
            assert mount.get("readOnly") is True
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    assert {"/proc", "/sys", "/run", "/var/run", "/etc/os-release"} <= host_paths
    # statfs needs every host mount point, those mounted after the agent started too
    (root,) = [m for n, m in mounts.items() if volumes[n].get("hostPath", {}).get("path") == "/"]
    assert root["mountPropagation"] == "HostToContainer"
    assert mounts["state"]["mountPath"] == args["state-dir"]
    assert "spool" in [a.removeprefix("--") for a in container["args"]]
    probe_port = port_of(args["health-address"])
    assert container["ports"][0]["containerPort"] == probe_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    relay_port = port_of(args["relay-address"])
    assert relay_port == port_of(default(serve_command, "listen_address"))
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"operator": "Exists"} in pod["tolerations"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # the host's check directory, read-only, where --checks-dir looks for it
    checks_dir = default(agent_run, "checks_dir")
    assert volumes["checks"]["hostPath"]["path"] == checks_dir
    assert args["checks-dir"] == mounts["checks"]["mountPath"] == host_root + checks_dir
    added = set(container["securityContext"]["capabilities"]["add"])
    assert {"SETUID", "SETGID"} <= added  # to run checks as nobody


def test_agents_prove_their_node_with_a_projected_token_the_relay_reviews() -> None:
    daemonset = find("DaemonSet", "kubensage-agent")
    pod = daemonset["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    token_file = Path(args_of(agent)["token-file"])
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    mount = mounts[str(token_file.parent)]
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    (source,) = volume["projected"]["sources"]
    projected = source["serviceAccountToken"]
    assert projected["path"] == token_file.name
    assert projected["expirationSeconds"] == 3600
    assert pod["automountServiceAccountToken"] is False  # no API token, only this one
    relay = find("Deployment", "kubensage-relay")["spec"]["template"]["spec"]
    (relay_container,) = relay["containers"]
    relay_args = relay_container["args"]
    assert "--token-review" in relay_args
    assert projected["audience"] == default(serve_command, "token_review_audience")
    namespace, name = default(serve_command, "token_review_service_account").split(":")
    assert (daemonset["metadata"]["namespace"], pod["serviceAccountName"]) == (namespace, name)


def test_plaintext_ingest_is_only_shipped_with_a_node_binding() -> None:
    for kind, name in (("Deployment", "kubensage-relay"), ("DaemonSet", "kubensage-agent")):
        (container,) = find(kind, name)["spec"]["template"]["spec"]["containers"]
        if "--insecure" in container["args"]:
            bound = {"--token-review", "--token-file", "--tls-client-ca-file"}
            assert any(a.split("=")[0] in bound for a in container["args"]), (kind, name)


def test_relay_ports_match_the_cli_and_the_service() -> None:
    deployment = find("Deployment", "kubensage-relay")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = args_of(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (
        ports["grpc"]
        == port_of(args["listen-address"])
        == port_of(default(serve_command, "listen_address"))
    )
    assert (
        ports["metrics"]
        == port_of(args["metrics-address"])
        == port_of(default(serve_command, "metrics_address"))
    )
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics"
    assert {
        container["livenessProbe"]["httpGet"]["path"],
        container["readinessProbe"]["httpGet"]["path"],
    } == {"/healthz", "/readyz"}
    service = find("Service", "kubensage-relay")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert deployment["spec"]["replicas"] == 3
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    hpa = find("HorizontalPodAutoscaler", "kubensage-relay")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert find("PodDisruptionBudget", "kubensage-relay")["spec"]["minAvailable"] == 2
    monitor = find("ServiceMonitor", "kubensage-relay")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_relay_rbac_reads_what_enrichment_uses_and_only_creates_token_reviews() -> None:
    role = find("ClusterRole", "kubensage-relay")
    granted = {
        (g, r, tuple(rule["verbs"]))
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    read = ("get", "list", "watch")
    assert granted == {
        ("", "pods", read),
        ("", "nodes", read),
        ("apps", "replicasets", read),
        ("batch", "jobs", read),
        ("authentication.k8s.io", "tokenreviews", ("create",)),
    }
    binding = find("ClusterRoleBinding", "kubensage-relay")
    assert (
        binding["subjects"][0]["name"]
        == find("Deployment", "kubensage-relay")["spec"]["template"]["spec"]["serviceAccountName"]
    )


def test_kustomization_lists_every_core_manifest() -> None:
    listed = set(yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUBE.glob("*.yaml")} - {
        "kustomization.yaml",
        "prometheus-scrape-config.yaml",
    }
    # ServiceMonitors need the Prometheus Operator's CRD: applied separately
    assert listed == {name for name in present if not name.endswith("servicemonitor.yaml")}


def test_advisor_runs_two_electing_replicas_with_rights_on_its_lease_only() -> None:
    deployment = find("Deployment", "kubensage-advisor")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = args_of(container)
    assert deployment["spec"]["replicas"] == 2
    assert container["args"][0] == "serve" and "no-leader-election" not in container["args"]
    known = {p.name.replace("_", "-") for p in advisor_serve.params if p.name}
    assert set(args) <= known
    port = port_of(args["metrics-address"])
    assert port == port_of(default(advisor_serve, "metrics_address"))
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert args["lease-namespace"] == "$(POD_NAMESPACE)" and env["POD_NAMESPACE"] == (
        "metadata.namespace"
    )
    assert args["identity"] == "$(POD_NAME)" and env["POD_NAME"] == "metadata.name"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    role = find("Role", "kubensage-advisor")
    assert {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    } == {("coordination.k8s.io", "leases")}
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"create", "get", "update"}
    named = [rule for rule in role["rules"] if "resourceNames" in rule]
    assert [rule["resourceNames"] for rule in named] == [[default(advisor_serve, "lease_name")]]
    binding = find("RoleBinding", "kubensage-advisor")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    assert binding["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    service = find("Service", "kubensage-advisor")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    monitor = find("ServiceMonitor", "kubensage-advisor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_shipped_scrapes_keep_the_instance_the_node_exporter_profile_sets() -> None:
    """Without honor_labels Prometheus would move each node's `instance` to
    `exported_instance` and the node-mixin would see one instance per relay."""
    config = yaml.safe_load((KUBE / "prometheus-scrape-config.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True
    monitor = yaml.safe_load((KUBE / "servicemonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True


def test_remote_write_overlay_runs_relays_with_their_queue_on_a_volume() -> None:
    folder = KUBE / "remote-write"
    (statefulset,) = [
        d for d in yaml.safe_load_all((folder / "relay-statefulset.yaml").read_text())
    ]
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(statefulset, kubernetes_validate.latest_version(), strict=True)
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = serve_command.make_context("serve", list(container["args"][1:]))
    export = export_config(context.params)
    assert export is not None and export.queue_dir is not None
    assert dict(export.external_labels) == {"cluster": "prod"}
    assert context.params["expose_node_series"] is False
    (mount,) = container["volumeMounts"]
    assert str(export.queue_dir).startswith(mount["mountPath"] + "/")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"]
    overlay = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["..", "relay-statefulset.yaml"]
    deleted = yaml.safe_load(overlay["patches"][0]["patch"])
    assert (deleted["kind"], deleted["metadata"]["name"]) == ("Deployment", "kubensage-relay")
    hpa = find("HorizontalPodAutoscaler", "kubensage-relay")
    assert hpa["spec"]["scaleTargetRef"]["name"] == statefulset["metadata"]["name"]
    assert yaml.safe_load(overlay["patches"][1]["patch"])[0]["value"] == statefulset["kind"]
    service = find("Service", "kubensage-relay")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
