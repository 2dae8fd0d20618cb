"""What ships: the install script, systemd units and Kubernetes manifests hold together."""

from __future__ import annotations

import configparser
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

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
    assert agent["Service"]["ReadWritePaths"] == "/var/lib/kubensage"


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
            assert mount["mountPath"] == host_root + volume["hostPath"]["path"]
            assert mount.get("readOnly") is True
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    assert {"/proc", "/sys", "/run", "/var/run", "/etc/os-release"} <= host_paths
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


def test_relay_rbac_is_read_only_on_exactly_what_enrichment_uses() -> None:
    role = find("ClusterRole", "kubensage-relay")
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {("", "pods"), ("", "nodes"), ("apps", "replicasets"), ("batch", "jobs")}
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in role["rules"])
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
        "servicemonitor.yaml",
    }
    assert listed == present


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
