"""``alphaops serve`` over HTTP on loopback: predictions at concurrency 1/8/32 against a bare
FastAPI + onnxruntime floor on the same ONNX model, and the read API at 10,000 versions.

The model is real: LightGBM (ternary, 100 rounds at most) trained on the last ``BARS`` BTCUSDT
1h candles of ``/work/shared/data`` with ``FeatureSpec.default()``, published in a temporary
SQLite registry; every request carries one real feature row (the last validation row) in the
Open Inference Protocol v2 JSON shape.

Both servers are separate processes run by the same uvicorn (its defaults: uvloop, one worker,
``log_level=warning``): ``alphaops serve --predict BTCUSDT/lightgbm --anonymous-read`` (the
hot-swapping LivePredictor, input checks, metrics, OIP response) and the floor, a FastAPI app
whose ``async`` route parses the same JSON and runs an onnxruntime session with the same options
(one intra-op thread) and returns the probabilities. The load comes from a separate process
(asyncio on uvloop, raw HTTP/1.1 keep-alive, one connection per concurrent client), so neither
server pays for the client's parsing. Each level sends ``WARMUP`` requests, then ``REQUESTS``.

Figures (per concurrency C):
- ``floor_cC_rps`` / ``serve_cC_rps``: requests per second; ``*_p50_ms`` / ``*_p99_ms``
- ``serve_over_floor_cC_overhead``: ``floor_rps / serve_rps - 1`` (goal: ≤ 0.20)
- ``serve_token_c8_*``: alphaops serve with a viewer token (hashed lookup) instead of
  anonymous reads
- ``read_champion_*``: ``GET /api/v1/models/BTCUSDT/lightgbm/aliases/champion`` with 10,000
  versions of the model in the registry (versions 2..10,000 inserted in bulk as metadata rows,
  like ``bench_registry``), at concurrency 1 and 8; ``read_champion_resolve_us``: the
  in-process ``registry.resolve`` it wraps
- ``mlflow``: why MLflow's model server is not measured (see ``MLFLOW_SKIPPED``)

The machine is 2 shared cores: client and server compete for them, and other processes add
noise; compare the ratios within one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path("/work/shared/data/BTCUSDT-1h.parquet")
BARS = 8000
KEY = "BTCUSDT/lightgbm"
VERSIONS = 10_000
LEVELS = (1, 8, 32)
REQUESTS = {1: 800, 8: 1500, 32: 1500}
WARMUP = 200
ROUNDS = 3
INFER = "/v2/models/BTCUSDT.lightgbm/infer"
CHAMPION = f"/api/v1/models/{KEY}/aliases/champion"
MLFLOW_SKIPPED = (
    "not measured: `mlflow models serve` needs the full `mlflow` package; "
    "`pip install --dry-run mlflow==3.17.2` here would add gunicorn, graphene, huey, "
    "mlflow-tracing and downgrade pyarrow 26.0.1 -> 25.0.1 in the shared environment, whose "
    "parquet reading every engineer's tests use (the repo deliberately ships mlflow-skinny, "
    "see pyproject's `bench` extra); MLflow's in-process pyfunc is measured in bench_runtime"
)

FLOOR_APP = """
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
with open(os.environ["BENCH_MODEL"], "rb") as f:
    session = ort.InferenceSession(f.read(), options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output = [session.get_outputs()[0].name]
app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> dict:
    body = await request.json()
    tensor = body["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    probabilities = session.run(output, {input_name: x})[0]
    return {
        "model_name": name,
        "outputs": [{"name": "probabilities", "shape": list(probabilities.shape),
                     "datatype": "FP32", "data": probabilities.reshape(-1).tolist()}],
    }
"""


# -- the load generator (a separate process: ``python bench_serve.py client SPEC``) -----------


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    body = spec["body"].encode()
    head = f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if spec.get("token"):
        head += f"Authorization: Bearer {spec['token']}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = (head + "\r\n").encode() + body
    total, concurrency = spec["warmup"] + spec["n"], spec["concurrency"]
    latencies: list[float] = []
    failures: list[str] = []
    sent = 0

    async def worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        while sent < total:
            sent += 1
            measured = sent > spec["warmup"]
            began = time.perf_counter()
            writer.write(request)
            header = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            if not header.startswith(b"HTTP/1.1 200"):
                failures.append((header.split(b"\r\n")[0] + b" " + payload[:200]).decode())
            if measured:
                latencies.append(time.perf_counter() - began)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        # Warm-up requests are in the elapsed time too: count them in the rate.
        "rps": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }


def _client_main(spec_json: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_client(json.loads(spec_json)))))


def _load(port: int, method: str, path: str, body: str, concurrency: int, n: int,
          token: str | None = None) -> dict[str, Any]:  # fmt: skip
    spec = {"port": port, "method": method, "path": path, "body": body, "token": token,
            "concurrency": concurrency, "n": n, "warmup": WARMUP}  # fmt: skip
    done = subprocess.run([sys.executable, __file__, "client", json.dumps(spec)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    if figures["failures"]:
        raise RuntimeError(f"{figures['failures']} failed requests: {figures['first_failure']}")
    return figures


# -- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(command: list[str], port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[Any]:
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{command[:4]} did not start in 120 s: {log.read_text()[-2000:]}")


def _stop(server: subprocess.Popen[Any]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- the registry -----------------------------------------------------------------------------


def _prepare(home: Path) -> tuple[list[float], bytes, str, float]:
    """Train, publish and promote the model, add 10k versions; return a row, the ONNX model,
    a viewer token and the in-process resolve time (µs)."""
    import numpy as np
    from sqlalchemy import insert, select

    from alphaops.data.readers import read_candles
    from alphaops.features import FeatureSpec, LabelRule
    from alphaops.registry import _schema as t
    from alphaops.registry import open_registry
    from alphaops.registry.testing import record_passing_gates
    from alphaops.services.tokens import Role, TokenStore
    from alphaops.training import TrainingJob
    from alphaops.training.data import prepare_data
    from alphaops.training.executor import publish_trained, train_job

    candles = {"BTCUSDT": read_candles(DATA, symbol="BTCUSDT", timeframe="1h").tail(BARS)}
    job = TrainingJob(
        symbols=("BTCUSDT",), timeframe="1h", model="lightgbm", params={"n_estimators": 100},
        features=FeatureSpec.default(), label=LabelRule(kind="ternary", horizon=4, threshold=0.01),
        seed=1,
    )  # fmt: skip
    trained = train_job(job, candles)
    row = np.asarray(prepare_data(job, candles).X_val[-1], dtype=np.float32)
    with open_registry(home, actor="bench") as reg:
        first = publish_trained(trained, reg)
        record_passing_gates(reg, first.ref)
        reg.promote(first.ref, expect=None, reason="bench")
        with reg.database.write() as conn:
            model_id = conn.execute(select(t.models.c.id)).scalar_one()
            conn.execute(insert(t.versions), [
                {"model_id": model_id, "symbol": "BTCUSDT", "model_type": "lightgbm",
                 "version": v, "status": "ready", "manifest": first.manifest_json,
                 "manifest_sha256": first.manifest_sha256, "size_bytes": first.size_bytes,
                 "created_at": first.created_at, "created_by": "bench"}
                for v in range(2, VERSIONS + 1)
            ])  # fmt: skip
        assert len(reg.list_versions(KEY)) == VERSIONS
        secret = TokenStore(reg.database).create("bench", Role.VIEWER, actor="bench")[1]
        reg.resolve(f"{KEY}@champion")
        began = time.perf_counter()
        for _ in range(500):
            reg.resolve(f"{KEY}@champion")
        resolve_us = (time.perf_counter() - began) / 500 * 1e6
    return [float(v) for v in row], trained.model_onnx, secret, resolve_us


def _asgi_us(app: Any, body: bytes, n: int) -> float:
    """Return the mean µs of one infer request sent straight to the ASGI app (no network)."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip

    async def drive() -> float:
        state: dict[str, Any] = {}
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        events: asyncio.Queue[str] = asyncio.Queue()

        async def receive_lifespan() -> dict[str, Any]:
            return await inbox.get()

        async def send_lifespan(message: dict[str, Any]) -> None:
            await events.put(message["type"])

        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                            "state": state}, receive_lifespan, send_lifespan))  # fmt: skip
        await inbox.put({"type": "lifespan.startup"})
        assert await events.get() == "lifespan.startup.complete"

        async def call() -> None:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "scheme": "http", "path": INFER,
                     "raw_path": INFER.encode(), "query_string": b"", "root_path": "",
                     "headers": headers, "client": ("127.0.0.1", 1),
                     "server": ("127.0.0.1", 80), "state": dict(state)}  # fmt: skip
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return messages.pop() if messages else {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            if sent[0]["status"] != 200:
                raise RuntimeError(f"in-process infer answered {sent}")

        for _ in range(WARMUP):
            await call()
        began = time.perf_counter()
        for _ in range(n):
            await call()
        mean = (time.perf_counter() - began) / n * 1e6
        await inbox.put({"type": "lifespan.shutdown"})
        assert await events.get() == "lifespan.shutdown.complete"
        await lifespan
        return mean

    return asyncio.run(drive())


def _in_process(work: Path, home: Path, body: bytes) -> dict[str, float]:
    """Both apps called in this process (median of rounds, alternating)."""
    import importlib.util

    from alphaops.core.config import load_config
    from alphaops.serve import ServeConfig, create_app

    os.environ["BENCH_MODEL"] = str(work / "model.onnx")
    spec = importlib.util.spec_from_file_location("floor_app", work / "floor_app.py")
    assert spec is not None
    assert spec.loader is not None
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    serve = create_app(
        load_config(environ={}, home=home),
        ServeConfig(predict=(KEY,), anonymous_read=True, load_in="thread"),
    )
    rounds: dict[str, list[float]] = {"floor": [], "serve": []}
    for _ in range(ROUNDS):
        rounds["floor"].append(_asgi_us(floor.app, body, 1000))
        rounds["serve"].append(_asgi_us(serve, body, 1000))
    floor_us, serve_us = (statistics.median(rounds[k]) for k in ("floor", "serve"))
    return {"asgi_floor_us": floor_us, "asgi_serve_us": serve_us,
            "asgi_serve_over_floor_us": serve_us - floor_us}  # fmt: skip


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        home = work / "home"
        row, model, token, resolve_us = _prepare(home)
        (work / "model.onnx").write_bytes(model)
        (work / "floor_app.py").write_text(FLOOR_APP)
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, len(row)],
                                       "datatype": "FP32", "data": row}]})  # fmt: skip
        env = os.environ | {"BENCH_MODEL": str(work / "model.onnx"), "NO_COLOR": "1"}
        commands = {
            "floor": [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(work),
                      "--log-level", "warning"],
            "serve": [sys.executable, "-m", "alphaops", "--home", str(home), "serve",
                      "--predict", KEY, "--anonymous-read"],
        }  # fmt: skip
        ports = {name: _free_port() for name in commands}
        servers: dict[str, subprocess.Popen[Any]] = {}
        try:
            for name, command in commands.items():
                servers[name] = _start([*command, "--port", str(ports[name])], ports[name],
                                       work / f"{name}.log", env)  # fmt: skip
            # Both servers stay up (an idle one costs nothing); the rounds alternate which
            # goes first, so that a change of the machine's load hits both alike.
            for c in LEVELS:
                runs: dict[str, list[dict[str, Any]]] = {"floor": [], "serve": []}
                for r in range(ROUNDS):
                    for name in ("floor", "serve") if r % 2 == 0 else ("serve", "floor"):
                        runs[name].append(_load(ports[name], "POST", INFER, body, c, REQUESTS[c]))
                for name, got in runs.items():
                    for k in ("rps", "p50_ms", "p99_ms"):
                        figures[f"{name}_c{c}_{k}"] = statistics.median(g[k] for g in got)
            port = ports["serve"]
            got = _load(port, "POST", INFER, body, 8, REQUESTS[8], token)
            for k in ("rps", "p50_ms", "p99_ms"):
                figures[f"serve_token_c8_{k}"] = got[k]
            for c in (1, 8):
                got = _load(port, "GET", CHAMPION, "", c, 1000)
                for k in ("rps", "p50_ms", "p99_ms"):
                    figures[f"read_champion_c{c}_{k}"] = got[k]
        finally:
            for server in servers.values():
                _stop(server)
        figures |= _in_process(work, home, body.encode())
    for c in LEVELS:
        figures[f"serve_over_floor_c{c}_overhead"] = (
            figures[f"floor_c{c}_rps"] / figures[f"serve_c{c}_rps"] - 1
        )
        figures[f"serve_over_floor_c{c}_p99"] = (
            figures[f"serve_c{c}_p99_ms"] / figures[f"floor_c{c}_p99_ms"]
        )
    figures["read_champion_versions"] = VERSIONS
    figures["read_champion_resolve_us"] = resolve_us
    figures["mlflow"] = MLFLOW_SKIPPED
    return figures


if __name__ == "__main__" and sys.argv[1:2] == ["client"]:
    _client_main(sys.argv[2])
