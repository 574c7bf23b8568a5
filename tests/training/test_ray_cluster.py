"""The Ray executor against a real two-node Ray cluster started on loopback.

The ``ray_cluster`` fixture runs ``ray start --head`` and a joined worker node (``ray start
--address``), each with one CPU, its own ``--temp-dir`` and a 200 MB object store, each in
its own session; teardown ends exactly those two sessions (never ``ray stop``, which stops
every Ray process of the machine, other engineers' included). Both nodes and the driver run
with ``RAY_AUTH_MODE=token`` and Ray's default token file, as a user's cluster would.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.training.conftest import make_job

from alphaops.core.errors import AlphaOpsError
from alphaops.core.home import AlphaOpsHome
from alphaops.data import CandleStore
from alphaops.data.candles import Candles
from alphaops.registry import open_registry
from alphaops.training import CancelToken, ProgressUpdate, _ray, publish_trained, train_job
from alphaops.training.fanout import run_jobs

RAY = Path(sys.executable).with_name("ray")
ALPHAOPS = Path(sys.executable).with_name("alphaops")
STARTED = b"Ray runtime started"
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running loopback cluster: its address and the two ``ray start --block`` sessions."""

    address: str
    nodes: list[subprocess.Popen[bytes]]
    folder: Path
    env: dict[str, str]

    def stop(self) -> None:
        for node in reversed(self.nodes):  # SIGTERM: ray start --block stops its processes
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(max(0.1, deadline - time.monotonic()))
            _kill_session(node.pid)  # whatever of this session is left (it is ours alone)


def _kill_session(sid: int) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def _start_node(folder: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    folder.mkdir()
    args = [
        str(RAY),
        "start",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--temp-dir={folder}",
        "--object-store-memory=200000000",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        *extra,
    ]
    with (folder / "start.log").open("wb") as log:
        return subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_started(node: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while STARTED not in log.read_bytes():
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """Start a head node and a joined worker node on loopback; stop both at the end."""
    import ray

    # Short root: Ray's socket paths must stay under the 107-byte limit of AF_UNIX.
    folder = Path(tempfile.mkdtemp(prefix="aoray-", dir="/tmp"))
    env = os.environ | {"RAY_AUTH_MODE": "token"}
    # As a user sets up a token-authenticated cluster: Ray's default token file, made once
    # if this machine has none yet (an existing one is kept).
    subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "get-auth-token", "--generate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}", [], folder, env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "token")
        # This process may have read Ray's config before: re-read it, as Ray itself does
        # when it turns token authentication on (authentication_token_setup).
        raylet: Any = importlib.import_module("ray._raylet")
        raylet.Config.initialize("")
        try:
            head = _start_node(
                folder / "head", env, "--head", f"--port={port}", "--include-dashboard=false"
            )
            cluster.nodes.append(head)
            _wait_started(head, folder / "head" / "start.log")
            worker = _start_node(folder / "worker", env, f"--address={cluster.address}")
            cluster.nodes.append(worker)
            _wait_started(worker, folder / "worker" / "start.log")
            yield cluster
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.stop()
            shutil.rmtree(folder, ignore_errors=True)


def _alive_nodes() -> set[str]:
    ray: Any = importlib.import_module("ray")
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def test_jobs_train_on_both_nodes_and_publish_what_sequential_training_makes(
    ray_cluster: Cluster, market: dict[str, Candles], tmp_path: Path
) -> None:
    # BTCUSDT twice (two seeds): its candles are shipped once and used by both jobs.
    jobs = [make_job("lightgbm", symbols=(s,)) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    jobs.append(make_job("lightgbm", symbols=("BTCUSDT",), seed=11))
    updates: list[tuple[int, ProgressUpdate]] = []
    with open_registry(AlphaOpsHome(tmp_path / "home").ensure()) as registry:
        outcomes = run_jobs(
            jobs,
            market,
            executor="ray",
            ray_address=ray_cluster.address,
            publish=lambda t: publish_trained(t, registry),
            progress=lambda i, u: updates.append((i, u)),
        )
        nodes = _alive_nodes()
        assert [o.status for o in outcomes] == ["published"] * 4, [o.error for o in outcomes]
        assert len(nodes) == 2
        assert {o.node for o in outcomes} == nodes  # both nodes trained
        assert len({o.pid for o in outcomes}) == 2  # one warm actor per node, reused
        assert os.getpid() not in {o.pid for o in outcomes}
        for outcome, job in zip(outcomes, jobs, strict=True):
            assert outcome.ref is not None
            assert registry.verify(outcome.ref).ok
            here = train_job(job, market)  # the same job, trained in this process
            bundle = registry.load(outcome.ref)
            assert bundle.manifest.data.fingerprint == here.manifest["data"]["fingerprint"]
            assert bundle.manifest.data.rows == here.manifest["data"]["rows"]
            assert np.array_equal(
                np.asarray(bundle.predict(here.reference_inputs)), here.reference_expected
            )
            same = {k for k in here.metrics if k != "fit_seconds"}
            assert {k: outcome.metrics[k] for k in same} == {k: here.metrics[k] for k in same}
    assert {i for i, _ in updates} == {0, 1, 2, 3}
    assert all(any(u.final for i, u in updates if i == k) for k in range(4))


def test_a_cancel_stops_the_remote_jobs_at_their_next_check(
    ray_cluster: Cluster, market: dict[str, Candles]
) -> None:
    endless = {"n_estimators": 100_000, "early_stopping_rounds": 0}
    jobs = [make_job("lightgbm", symbols=(s,), params=endless) for s in market]
    token = CancelToken()
    boosting: set[int] = set()

    def on_progress(index: int, update: ProgressUpdate) -> None:
        boosting.add(index)
        if len(boosting) == 2:  # both nodes are boosting: cancel
            token.cancel()

    started = time.monotonic()
    outcomes = run_jobs(
        jobs,
        market,
        executor="ray",
        ray_address=ray_cluster.address,
        progress=on_progress,
        cancel=token,
        progress_interval=0.1,
    )
    assert token.cancelled_at is not None
    stopped = time.monotonic() - token.cancelled_at
    assert [o.status for o in outcomes] == ["cancelled"] * 3
    assert boosting == {0, 1}  # the third job was never handed to a node
    for outcome in outcomes[:2]:  # each remote job stopped itself at a boosting round
        assert outcome.error is not None
        assert outcome.error["error"] == "cancelled"
        assert "boosting round" in json.dumps(outcome.error)
        assert outcome.node is not None
    # 100,000 rounds take minutes; stopping at the next round takes well under the grace.
    assert stopped < 5.0, (stopped, time.monotonic() - started)
    # Both CPUs of the cluster are free again: a short job runs at once.
    again = run_jobs(
        [make_job("lightgbm", symbols=("ETHUSDT",))],
        market,
        executor="ray",
        ray_address=ray_cluster.address,
    )
    assert [o.status for o in again] == ["trained"]


def test_warm_actors_stay_between_runs_and_free_the_cpus_when_idle(
    ray_cluster: Cluster, market: dict[str, Candles], monkeypatch: pytest.MonkeyPatch
) -> None:
    ray: Any = importlib.import_module("ray")
    job = make_job("lightgbm", symbols=("SOLUSDT",))

    def run() -> set[int | None]:
        outcomes = run_jobs([job, job], market, executor="ray", ray_address=ray_cluster.address)
        assert [o.status for o in outcomes] == ["trained"] * 2
        return {o.pid for o in outcomes}

    first = run()
    assert run() == first  # the same warm processes, no new imports
    assert ray.available_resources().get("CPU", 0) == 0  # held while warm
    monkeypatch.setattr(_ray, "IDLE_RELEASE_SECONDS", 0.5)
    assert run() == first
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2:  # released after 0.5 s idle
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert run().isdisjoint(first)  # new actors: the idle ones were released


def test_the_cli_trains_on_the_cluster_with_ray_address(
    ray_cluster: Cluster, market: dict[str, Candles], tmp_path: Path
) -> None:
    ray: Any = importlib.import_module("ray")
    ray.shutdown()  # this process's warm actors would hold both CPUs the CLI needs
    home = AlphaOpsHome(tmp_path / "home").ensure()
    store = CandleStore(home.data_dir)
    for candles in market.values():
        store.append(candles)
    args = [
        str(ALPHAOPS),
        "--home",
        str(home.root),
        "train",
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--param",
        "n_estimators=40",
        "--executor",
        "ray",
        "--ray-address",
        ray_cluster.address,
        "--json",
    ]
    done = subprocess.run(args, env=ray_cluster.env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    assert summary["executor"] == "ray"
    assert [j["status"] for j in summary["jobs"]] == ["published"] * 3
    assert len({j["node"] for j in summary["jobs"]}) == 2
    with open_registry(home) as registry:
        for job in summary["jobs"]:
            assert registry.verify(job["ref"]).ok


@pytest.mark.parametrize(
    ("address", "error", "words"),
    [
        ("127.0.0.1", "usage_error", "is not HOST:PORT"),
        ("127.0.0.1:http", "usage_error", "is not HOST:PORT"),
        (None, "external_service", "no Ray cluster answers at 127.0.0.1:"),
    ],
)
def test_a_bad_or_silent_ray_address_is_a_typed_error_naming_it(
    market: dict[str, Candles], address: str | None, error: str, words: str
) -> None:
    address = address or f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(AlphaOpsError) as caught:
        run_jobs([make_job("lightgbm")], market, executor="ray", ray_address=address)
    assert caught.value.code == error
    assert words in str(caught.value)
    assert address in str(caught.value)
    assert caught.value.fix
