"""A real one-machine Slurm cluster (munged, slurmctld and one slurmd per node) in a folder of its own.

Tests and the benchmark start it to run submitit jobs on this machine: two (or more) node entries on
127.0.0.1 (this host's name and `localhost`) with their own ports, cons_tres, linuxproc tracking, no
cgroups.
Clients (sinfo, sbatch, submitit) find it through `SLURM_CONF`, which `env()` gives.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_binaries() -> list[str]:
    """The Slurm/munge programs this machine lacks (`.ci/slurm-setup.sh` installs them)."""
    return [b for b in DAEMONS if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def stop_detached(folder: str | Path, timeout_s: float = 30.0) -> None:
    """Stop the daemons a detached `start` left running in `folder` (their pids are in daemons.pid)."""
    pids_file = Path(folder).resolve() / "daemons.pid"
    if not pids_file.exists():
        return
    pids = [int(p) for p in pids_file.read_text().split()]
    for pid in reversed(pids):  # slurmds, slurmctld, then munged
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pids_file.unlink()
    digest = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:12]
    shutil.rmtree(Path(tempfile.gettempdir()) / f"bw-munge-{digest}", ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """Slurm on this machine: `nodes` node entries of `cpus` CPUs and `mem_mb` memory, one partition.

    Use as a context manager (or `start()`/`stop()`); every file (config, keys, sockets, state, logs) is in
    `folder`, and nothing outside it is touched, so several can run side by side on different ports.
    """

    def __init__(
        self,
        folder: str | Path,
        nodes: int = 2,
        cpus: int = 2,
        mem_mb: int = 4096,
        partition: str = "debug",
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.folder = Path(folder).resolve()
        # Node names that resolve to this machine, as a real cluster's node names resolve to their hosts:
        # rank 0's address for a multi-task job is the first host of the job's node list.
        host = socket.gethostname().split(".")[0]
        self.nodes = ([host, "localhost"] + [f"n{i}" for i in range(3, nodes + 1)])[:nodes]
        self.cpus, self.mem_mb, self.partition = cpus, mem_mb, partition
        self.ready_timeout_s = ready_timeout_s
        self.conf = self.folder / "slurm.conf"
        # A unix socket path must fit in 108 bytes: munged's lives in a short folder named for this one.
        digest = hashlib.sha1(str(self.folder).encode()).hexdigest()[:12]
        self.munge_socket = Path(tempfile.gettempdir()) / f"bw-munge-{digest}" / "munge.socket"
        self._procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        """Environment variables a Slurm client needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def write_config(self) -> Path:
        """slurm.conf for this folder (auth through this folder's munged, state and logs here)."""
        f = self.folder
        host = socket.gethostname().split(".")[0]
        lines = [
            "ClusterName=bluewhale",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={f}/state",
            f"SlurmdSpoolDir={f}/spool/%n",
            f"SlurmctldPidFile={f}/slurmctld.pid",
            f"SlurmdPidFile={f}/slurmd.%n.pid",
            f"SlurmctldLogFile={f}/log/slurmctld.log",
            f"SlurmdLogFile={f}/log/slurmd.%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "SlurmdParameters=config_overrides",  # the node entries may claim more than this machine has
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "MinJobAge=60",
        ]
        for name in self.nodes:
            lines.append(
                f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={free_port()} "
                f"CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN"
            )
        nodes = ",".join(self.nodes)
        lines.append(f"PartitionName={self.partition} Nodes={nodes} Default=YES MaxTime=INFINITE State=UP")
        for d in ("state", "log", "munge", *(f"spool/{n}" for n in self.nodes)):
            (f / d).mkdir(parents=True, exist_ok=True)
        self.munge_socket.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        self.conf.write_text("\n".join(lines) + "\n")
        return self.conf

    def _spawn(self, argv: list[str], log: str) -> None:
        out = open(self.folder / "log" / log, "ab")  # noqa: SIM115 - owned by the child
        self._procs.append(
            subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def start(self) -> LocalSlurm:
        """Start munged, slurmctld and a slurmd per node; return once `sinfo` shows every node idle."""
        missing = missing_binaries()
        if missing:
            raise RuntimeError(f"Slurm is not installed here (missing {missing}): run .ci/slurm-setup.sh")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write_config()
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        m = self.folder / "munge"
        self._spawn(
            [_bin("munged"), "--foreground", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
             f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed", f"--log-file={m}/munged.log"],
            "munged.out",
        )  # fmt: skip
        self._wait(lambda: self.munge_socket.exists(), "munged's socket")
        self._spawn([_bin("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        for name in self.nodes:
            self._spawn([_bin("slurmd"), "-D", "-N", name, "-f", str(self.conf)], f"slurmd.{name}.out")
        self._wait(self._all_idle, "every node idle in sinfo")
        _write_atomic(self.folder / "daemons.pid", "".join(f"{p.pid}\n" for p in self._procs))
        return self

    def _all_idle(self) -> bool:
        r = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
        )
        states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
        return r.returncode == 0 and all(states.get(n) == "idle" for n in self.nodes)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p.args[0] for p in self._procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.5)
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((self.folder / "log").glob("*"))
        )
        self.stop()
        raise RuntimeError(f"local Slurm: waited for {what} in vain (exited: {dead}); logs:\n{logs}")

    def stop(self) -> None:
        """Stop the daemons (slurmds first, munged last) and wait for them."""
        for p in reversed(self._procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self._procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._procs.clear()
        shutil.rmtree(self.munge_socket.parent, ignore_errors=True)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m bluewhale.cluster.local_slurm start|stop FOLDER [--nodes N] [--cpus C]`: a detached local
    Slurm (the local Terraform target's Slurm nodes); `start` returns once every node is idle."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mem-mb", type=int, default=4096)
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop_detached(args.folder)
    else:
        stop_detached(args.folder)  # a restart (another node count) replaces the running one
        cluster = LocalSlurm(args.folder, nodes=args.nodes, cpus=args.cpus, mem_mb=args.mem_mb).start()
        print(f"local Slurm up: SLURM_CONF={cluster.conf} nodes={','.join(cluster.nodes)}")


if __name__ == "__main__":
    main()
