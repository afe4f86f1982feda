"""Docker swarm on a disposable daemon whose default runtime is the one under test: `swarm init`, a 2-replica
service on an overlay network; the service converges and its replicas reach each other through the service name."""

from __future__ import annotations

import time
from typing import Any

import docker
from docker.models.services import Service

from harness.context import Ctx, Refused, refusals
from harness.scenario import scenario
from tests.networking._support import disposable, fetch, free_port, name, resolve, server_cmd

REPLICAS = 2
CONVERGE_S = 45
OFFLINE = {"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
"""Without it the daemon tries to pull the service's image from Docker Hub before using the local copy."""


def _tasks(svc: Service) -> list[dict[str, Any]]:
    with refusals("docker service ps"):
        return [t for t in svc.tasks() if t.get("DesiredState") == "running"]


def _converge(svc: Service) -> tuple[list[dict[str, Any]], float]:
    """Wait for REPLICAS running tasks; a service that never gets there is the runtime refusing the operation."""
    started = time.monotonic()
    while True:
        tasks = _tasks(svc)
        states = sorted(t["Status"]["State"] for t in tasks)
        if states.count("running") >= REPLICAS:
            return tasks, time.monotonic() - started
        failed = [t for t in tasks if t["Status"]["State"] in ("failed", "rejected", "shutdown")]
        if failed or time.monotonic() - started > CONVERGE_S:
            errors = sorted({f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message')}"
                             for t in tasks})
            raise Refused(f"docker service create --replicas {REPLICAS}: did not converge within "
                          f"{time.monotonic() - started:.0f}s; tasks {states}; {errors}")
        time.sleep(0.5)


@scenario("networking/swarm", host_sensitive=True)
def test_swarm(ctx: Ctx) -> dict[str, Any]:
    """The swarm listens on loopback only and allocates overlay subnets inside the disposable daemon's 10.x range.
    The service uses DNS round-robin (endpoint mode dnsrr): this kernel has no IPVS, which the default virtual-IP
    mode needs, and dnsrr makes the service name answer with the replicas' own addresses. Tasks are never
    restarted, so a runtime that cannot start them shows up at once. Replica hostnames carry their slot number,
    and each replica answers with its hostname."""
    d = disposable(ctx, default_runtime=ctx.runtime, env=OFFLINE)
    octet = d.daemon.pool.split(".")[1]  # type: ignore[attr-defined]
    with refusals("docker swarm init"):
        d.client.swarm.init(advertise_addr="127.0.0.1", listen_addr=f"127.0.0.1:{free_port()}",
                            default_addr_pool=[f"10.{octet}.128.0/17"], subnet_size=24)
    net_name = name("overlay")
    with refusals("docker network create --driver overlay"):
        d.client.networks.create(net_name, driver="overlay", attachable=True, internal=True, labels=ctx.labels)
    svc_name = name("svc")
    with refusals("docker service create"):
        svc = d.client.services.create(
            ctx.image, server_cmd("", prog="hostname"), name=svc_name, networks=[net_name],
            hostname="replica-{{.Task.Slot}}",
            mode=docker.types.ServiceMode("replicated", replicas=REPLICAS),
            endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
            restart_policy=docker.types.RestartPolicy(condition="none"), labels=ctx.labels,
            container_labels=ctx.labels)
    tasks, took = _converge(svc)
    ctx.notes["converged_in_s"] = round(took, 1)
    replicas = sorted(d.client.containers.list(filters={"label": f"com.docker.swarm.service.id={svc.id}"}),
                      key=lambda c: c.attrs["Config"]["Hostname"])
    runtimes = sorted({d.inspect(c)["HostConfig"]["Runtime"] for c in replicas})
    seen: dict[str, Any] = {}
    for c in replicas:
        me = c.attrs["Config"]["Hostname"]
        answers = resolve(d, c, svc_name)
        ctx.notes[f"{me} resolves {svc_name}"] = answers
        seen[me] = {
            "service_name_answers": len(answers),
            "replies_via_answers": sorted(fetch(d, c, a) or "-" for a in answers),
            "reply_by_service_name_is_a_replica": (fetch(d, c, svc_name) or "").startswith("replica-"),
        }
    return {
        "running_tasks": sum(t["Status"]["State"] == "running" for t in tasks),
        "replica_runtime_is_target": runtimes == [ctx.runtime],
        "replicas": seen,
    }
