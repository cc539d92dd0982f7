"""Training on several processes with torch.distributed (gloo, on CPU).

Where ranks come from (`discover`, in this order): torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT, LOCAL_RANK); a Slurm task of a multi-task step, as submitit runs them (SLURM_PROCID,
SLURM_NTASKS, the first host of the job's node list, a port derived from the job id), or a task of
submitit's local executor (SUBMITIT_LOCAL_GLOBALID, SUBMITIT_LOCAL_NTASKS); else a local launch,
where this process becomes rank 0 and starts `cluster.ranks_per_node - 1` more on this machine.

How ranks train as one: each rank reads its shard of the train split (the connector cuts it by rank) in
batches of `train.batch_size / world_size` rows, so a step sees the same global batch as one process.
After each backward pass `GradientExchange` sums every gradient over the ranks and divides by the world
size: dense gradients (and floating buffers such as batch-norm statistics) in one flat all-reduce,
sparse embedding gradients with gloo's sparse all-reduce (it gathers every rank's rows and values and
sums them; only the touched rows travel). All ranks then take the same optimiser step (any optimiser:
Adam, SparseAdam, W&D's FTRL) and stay identical, without DDP's wrapper, so a model's own
`training_loss` (DIEN's auxiliary loss) and `optimizers` work unchanged. Evaluation scores each rank's
contiguous slice of a split and `gather_rows` joins them in rank order: the metrics are those of the whole
split on every rank, so early stopping decides the same everywhere. Collectives time out after
`train.collective_timeout_s`, and a lost peer fails the job with a message naming the cause.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from bluewhale.train.callbacks import Callback, TrainState

log = logging.getLogger(__name__)
LONG_WAIT = timedelta(hours=24)  # a barrier that waits for another rank's processing, not a collective


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands: its rank among `world_size`, and where rank 0 listens."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    source: str = "single"  # torchrun, slurm, submitit-local, local (this process spawns the rest), single
    spawn: int = 0  # local launch: how many more processes this one starts


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"environment variable {key}={env[key]!r}: expected an integer") from None


def slurm_master(env: Mapping[str, str]) -> str:
    """The first host of the Slurm job's node list (rank 0 runs there)."""
    nodes = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    if not nodes:
        return "127.0.0.1"
    try:
        from submitit.slurm.slurm import _parse_node_list

        return _parse_node_list(nodes)[0]
    except Exception:  # noqa: BLE001 - a node list submitit cannot parse: ask Slurm itself
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
        )
        return out.stdout.split()[0]


def discover(ranks_per_node: int = 1, env: Mapping[str, str] | None = None) -> RankInfo:
    """This process's rank, world size and rendezvous, from torchrun's or Slurm's (submitit's) variables,
    else a local launch of `ranks_per_node` processes (`cluster.ranks_per_node`)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in env]
        if missing and _int(env, "WORLD_SIZE") > 1:
            raise ValueError(f"RANK and WORLD_SIZE are set but not {missing}: torchrun sets all four")
        return RankInfo(
            _int(env, "RANK"),
            _int(env, "WORLD_SIZE"),
            _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0,
            env.get("MASTER_ADDR", "127.0.0.1"),
            int(env.get("MASTER_PORT", 0)),
            "torchrun",
        )
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        job = env.get("SLURM_JOB_ID", "0").split("_")[0]
        port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else 20000 + int(job or 0) % 40000
        return RankInfo(
            _int(env, "SLURM_PROCID"),
            _int(env, "SLURM_NTASKS"),
            int(env.get("SLURM_LOCALID", 0)),
            slurm_master(env),
            port,
            "slurm",
        )
    if "SUBMITIT_LOCAL_GLOBALID" in env and int(env.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1:
        job = int(env.get("SUBMITIT_LOCAL_JOB_ID", "0") or 0)  # submitit's local executor: one machine
        return RankInfo(
            _int(env, "SUBMITIT_LOCAL_GLOBALID"),
            _int(env, "SUBMITIT_LOCAL_NTASKS"),
            int(env.get("SUBMITIT_LOCAL_LOCALID", 0)),
            "127.0.0.1",
            int(env["MASTER_PORT"]) if "MASTER_PORT" in env else 20000 + job % 40000,
            "submitit-local",
        )
    if ranks_per_node < 1:
        raise ValueError(f"cluster.ranks_per_node: expected at least 1, got {ranks_per_node}")
    if ranks_per_node == 1:
        return RankInfo()
    return RankInfo(0, ranks_per_node, 0, "127.0.0.1", free_port(), "local", spawn=ranks_per_node - 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_batch(batch_size: int, world: int, rows: int | None = None) -> int:
    """Each rank's batch: `train.batch_size` split evenly over the ranks (refused when it does not divide,
    or when the global batch exceeds the train split's rows)."""
    if batch_size < world or batch_size % world:
        raise ValueError(
            f"train.batch_size={batch_size} does not divide evenly among {world} ranks: "
            f"expected a multiple of {world} (each rank takes batch_size / world_size rows a step)"
        )
    if world > 1 and rows is not None and batch_size > rows:
        raise ValueError(
            f"train.batch_size={batch_size} exceeds the train split's {rows} rows: with {world} ranks "
            "expected a global batch of at most the split's rows"
        )
    return batch_size // world


class PeerLost(RuntimeError):
    """A collective failed: another rank died, hung past the timeout, or could not be reached."""


@contextmanager
def ranks(
    ranks_per_node: int, timeout_s: float, child_cfg: Any = None, threads: int | None = None
) -> Iterator[RankInfo]:
    """Join (or, for a local launch, start) the ranks of this job for the duration of the block.

    A local launch starts the other ranks as fresh Python processes running the same resolved config
    (`child_cfg`, a plain dict); this process is rank 0 and returns the metrics. Unless `threads`
    (`cluster.threads`) says otherwise, local ranks share the cores evenly. A failed collective
    (or a rank that exited) becomes `PeerLost` with what is known about the cause.
    """
    info = discover(ranks_per_node)
    if info.world_size == 1:
        yield info
        return
    children: list[subprocess.Popen] = []
    threads_before = torch.get_num_threads()
    if info.spawn:
        threads = threads or max(1, (os.cpu_count() or 1) // info.world_size)
        torch.set_num_threads(threads)
        children = spawn_local(info, child_cfg, threads)
    timeout = timedelta(seconds=timeout_s)
    try:
        try:
            dist.init_process_group(
                "gloo",
                init_method=f"tcp://{info.master_addr}:{info.master_port}",
                rank=info.rank,
                world_size=info.world_size,
                timeout=timeout,
            )
        except Exception as error:  # noqa: BLE001 - a rendezvous that fails names where it waited
            raise PeerLost(
                f"rank {info.rank}/{info.world_size}: no rendezvous with rank 0 at "
                f"{info.master_addr}:{info.master_port} within {timeout_s:.0f} s ({info.source}): {error}"
            ) from error
        log.info(
            "rank %d of %d (%s), rank 0 at %s", info.rank, info.world_size, info.source, info.master_addr
        )
        try:
            yield info
        except (RuntimeError, dist.DistError) as error:
            if isinstance(error, PeerLost) or not _is_collective_error(error):
                raise
            dead = _exited(children)
            cause = f"; {dead}" if dead else " (another rank died or stopped answering; see its log)"
            raise PeerLost(
                f"rank {info.rank}/{info.world_size}: a collective failed{cause}; collectives time out "
                f"after train.collective_timeout_s={timeout_s:g} s. Cause: {str(error).splitlines()[0]}"
            ) from error
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    except BaseException:
        _stop(children, grace_s=10)
        raise
    finally:
        torch.set_num_threads(threads_before)
    failed = _join(children, timeout_s)
    if failed:
        raise PeerLost(f"rank 0 finished but {failed}")


def _is_collective_error(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    words = ("gloo", "connection", "timed out", "timeout", "peer", "distributed", "socket", "broken pipe")
    return isinstance(error, dist.DistError) or any(w in text for w in words)


def spawn_local(info: RankInfo, cfg: Any, threads: int) -> list[subprocess.Popen]:
    """Start ranks 1..world-1 on this machine, each a fresh interpreter running the resolved config
    (handed over in a private temporary file, which each rank deletes once read)."""
    import json

    children = []
    for r in range(1, info.world_size):
        fd, path = tempfile.mkstemp(prefix=f"bluewhale-rank{r}-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        env = os.environ | {
            "RANK": str(r),
            "WORLD_SIZE": str(info.world_size),
            "LOCAL_RANK": str(r),
            "MASTER_ADDR": info.master_addr,
            "MASTER_PORT": str(info.master_port),
            "OMP_NUM_THREADS": str(threads),
            "BLUEWHALE_RANK_CONFIG": path,
        }
        children.append(subprocess.Popen([sys.executable, "-m", "bluewhale.train.distributed"], env=env))
    log.info("local launch: ranks 1..%d are pids %s", info.world_size - 1, [c.pid for c in children])
    return children


def _exited(children: list[subprocess.Popen], wait_s: float = 3.0) -> str:
    """The local ranks that have exited with an error (waiting briefly: a peer's exit status lands just
    after its sockets close)."""
    deadline = time.monotonic() + wait_s
    while children and time.monotonic() < deadline and all(c.poll() is None for c in children):
        time.sleep(0.05)
    dead = [(r, c) for r, c in enumerate(children, 1) if c.poll() is not None and c.returncode != 0]
    return ", ".join(f"rank {r} (pid {c.pid}) {_status(c.returncode)}" for r, c in dead)


def _status(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _join(children: list[subprocess.Popen], timeout_s: float) -> str:
    failed = []
    for r, child in enumerate(children, 1):
        try:
            code = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        if code != 0:
            failed.append(f"rank {r} (pid {child.pid}) {_status(code)}")
    return ", ".join(failed)


def _stop(children: list[subprocess.Popen], grace_s: float) -> None:
    """Children of a failed rank 0 end with it: given `grace_s` to fail on their own, then killed."""
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def rank_zero_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. processing into a shared cache); the others run it after."""
    if world_size() == 1:
        yield
        return
    if rank() != 0:
        dist.monitored_barrier(timeout=LONG_WAIT)
    yield
    if rank() == 0:
        dist.monitored_barrier(timeout=LONG_WAIT)


def sparse_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters of modules built with sparse gradients (embedding tables), as `optim.optimizers` sees them."""
    return [p for m in model.modules() if getattr(m, "sparse", False) for p in m.parameters(recurse=False)]


class GradientExchange(Callback):
    """After each backward pass, every gradient becomes its mean over the ranks (see the module's doc).

    The first step also averages the dense weights once, so a weight a model sets from its first batch
    (logistic regression's bias) starts equal on every rank. `state.stop` (a stop signal on any rank)
    travels in the same all-reduce, so every rank stops after the same step.
    """

    def __init__(self) -> None:
        self.synced = False

    def on_fit_start(self, state: TrainState) -> None:
        if world_size() == 1:
            return
        if any(getattr(m, "fused", None) is not None for m in state.model.modules()):
            raise ValueError(
                "model.fused_embedding_update=true updates embedding rows inside backward, before ranks can "
                "exchange gradients: set it to false to train with several ranks"
            )
        dist.barrier()  # start together, so no rank's training time counts another's start-up

    def on_after_backward(self, state: TrainState) -> None:
        world = world_size()
        if world == 1:
            return
        model = state.model
        sparse_ids = {id(p) for p in sparse_parameters(model)}
        params = [p for p in model.parameters() if p.requires_grad]
        dense = [p for p in params if id(p) not in sparse_ids]
        sparse = [p for p in params if id(p) in sparse_ids]
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        if not self.synced:
            flat = torch.cat([p.detach().reshape(-1) for p in dense]) if dense else torch.zeros(0)
            dist.all_reduce(flat)
            _unflatten(flat / world, [p.data for p in dense])
            self.synced = True
        # dense gradients, buffers, which parameters have a gradient anywhere, and the stop flag: one call
        has = [float(p.grad is not None) for p in dense + sparse]  # in the order read back below
        grads = [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype) for p in dense
        ]
        parts = [*grads, *(b.reshape(-1) for b in buffers), torch.tensor([*has, float(state.stop)])]
        flat = torch.cat([t.float() for t in parts])
        dist.all_reduce(flat)
        flat /= world
        sizes = [g.numel() for g in grads] + [b.numel() for b in buffers] + [len(has) + 1]
        pieces = list(torch.split(flat, sizes))
        flags = pieces[-1]
        for p, piece, anywhere in zip(dense, pieces[: len(dense)], flags[: len(dense)], strict=True):
            p.grad = piece.view_as(p).to(p.dtype).clone() if anywhere > 0 else None
        for b, piece in zip(buffers, pieces[len(dense) : len(dense) + len(buffers)], strict=True):
            b.copy_(piece.view_as(b))
        for p, anywhere in zip(sparse, flags[len(dense) : len(params)], strict=True):
            if anywhere == 0:
                continue
            grad = (
                p.grad
                if p.grad is not None
                else torch.sparse_coo_tensor(
                    torch.zeros((1, 0), dtype=torch.long),
                    torch.zeros((0, *p.shape[1:]), dtype=p.dtype),
                    p.shape,
                )
            )
            work = dist.all_reduce(grad.coalesce(), async_op=True)  # gloo's sparse all-reduce answers in
            work.wait()  # its result, a new sparse tensor, not in place
            p.grad = (work.result()[0] / world).coalesce()
        state.stop = bool(flags[-1] > 0)


def _unflatten(flat: torch.Tensor, into: list[torch.Tensor]) -> None:
    at = 0
    for t in into:
        t.copy_(flat[at : at + t.numel()].view_as(t))
        at += t.numel()


class EqualSteps:
    """A rank's training batches cut to the fewest any rank has, so every rank takes the same steps
    (shards differ by at most a row, which can make one rank's last partial batch the only extra one)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        counts = torch.tensor([len(loader)])
        if world_size() > 1:
            dist.all_reduce(counts, op=dist.ReduceOp.MIN)
        self.steps = int(counts.item())

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.loader):
            if i >= self.steps:
                break
            yield batch


def total(value: float) -> float:
    """The sum of `value` over the ranks (e.g. the samples every rank trained on)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item())


def gather_rows(array: np.ndarray) -> np.ndarray:
    """Every rank's rows of `array`, concatenated in rank order (each rank holds a contiguous slice)."""
    world = world_size()
    if world == 1:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(tensor)]))
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype)
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(c.item())] for p, c in zip(parts, counts, strict=True)]).numpy()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (e.g. the checkpoint folder, which only rank 0's Hydra dir names)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def scratch_tracking() -> Iterator[None]:
    """Ranks other than 0 log nothing: MLflow calls made by shared stage code land in a throwaway store
    that is deleted afterwards, so the tracking server holds one run per job."""
    import shutil

    import mlflow

    folder = tempfile.mkdtemp(prefix="bluewhale-rank-mlflow-")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        mlflow.set_tracking_uri(f"file://{folder}")
        mlflow.set_experiment("scratch")
        with mlflow.start_run():
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _rank_main() -> None:
    """A locally launched rank: run the resolved config it was given (see `spawn_local`)."""
    import json

    from omegaconf import OmegaConf

    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ['RANK']}] %(name)s: %(message)s")
    path = os.environ.pop("BLUEWHALE_RANK_CONFIG")
    with open(path) as f:
        cfg = OmegaConf.create(json.load(f))
    os.unlink(path)
    from bluewhale.pipeline import run

    run(cfg)


if __name__ == "__main__":
    _rank_main()
