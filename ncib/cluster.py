"""Jobs launched by submitit (Hydra's SLURM and local launchers): the process layout for
Lightning, and who handles preemption.

**Layout.** ``cluster.nodes`` × ``cluster.gpus_per_node`` processes, one per GPU: the launcher
starts them all (``tasks_per_node = gpus_per_node``), and :class:`SubmititEnvironment` tells
Lightning each process's rank from submitit's own job environment — the same on SLURM and under
the local launcher, which is how a SLURM job is checked on one machine.

**Preemption.** submitit handles it, Lightning stays out of the way. On SLURM's timeout or
preemption signal (USR2, ``signal_delay_s`` before the time limit; at preemption too where the
cluster sends the job's signal, ``PreemptParameters=send_user_signal``) submitit asks Hydra's
launcher for a checkpoint — the job itself, resubmitted unchanged — and requeues it; the
requeued job runs the same command in the same run directory and resumes from its last
checkpoint (:mod:`ncib.rundir.resume`; at most ``callbacks.checkpoint.every_n_epochs`` epochs are
redone, identically). Lightning's own SLURM requeue (``SLURMEnvironment(auto_requeue=True)``)
is never used: the cluster environment here is :class:`SubmititEnvironment`.
"""

from __future__ import annotations

import os

from lightning_fabric.plugins.environments import ClusterEnvironment

__all__ = ["SubmititEnvironment", "cluster_environment"]


def _job_environment():
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit

    return submitit.JobEnvironment()


class SubmititEnvironment(ClusterEnvironment):
    """Ranks, world size and the rendezvous of a submitit job (all tasks started by submitit)."""

    def __init__(self) -> None:
        super().__init__()
        env = _job_environment()
        if env is None:
            raise RuntimeError(
                "SubmititEnvironment needs a job started by submitit (SUBMITIT_EXECUTOR is unset)"
            )
        self._env = env
        self._port = 20000 + int("".join(c for c in str(env.job_id) if c.isdigit()) or 0) % 20000

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        hosts = self._env.hostnames
        return hosts[0] if hosts else "127.0.0.1"

    @property
    def main_port(self) -> int:
        return int(os.environ.get("MASTER_PORT", self._port))

    @staticmethod
    def detect() -> bool:
        return bool(os.environ.get("SUBMITIT_EXECUTOR"))

    def world_size(self) -> int:
        return self._env.num_tasks

    def set_world_size(self, size: int) -> None:
        if size != self._env.num_tasks:
            raise ValueError(
                f"the Trainer asks for {size} processes (trainer.devices × trainer.num_nodes) but submitit "
                f"started {self._env.num_tasks}; set both through cluster.gpus_per_node and cluster.nodes"
            )

    def global_rank(self) -> int:
        return self._env.global_rank

    def set_global_rank(self, rank: int) -> None:
        pass  # submitit assigned it

    def local_rank(self) -> int:
        return self._env.local_rank

    def node_rank(self) -> int:
        return self._env.node


def cluster_environment() -> list:
    """The Trainer plugins for this process: ``[SubmititEnvironment()]`` under submitit, else none."""
    return [SubmititEnvironment()] if SubmititEnvironment.detect() else []
