"""torchrun's `env://` contract: which process this is among how many. Torch-free, so
the CLI reads it before torch is imported (the thread default depends on it).

torchrun (python -m torch.distributed.run) sets, for every process it starts:
RANK (0..WORLD_SIZE-1, over all machines), WORLD_SIZE, LOCAL_RANK (0..on this machine),
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. A plain `descent train` has none of them
and is rank 0 of 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from descent.errors import ConfigError


@dataclass(frozen=True)
class Process:
    """This process's place in the run: rank of world_size, local_rank of
    local_world_size on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Process:
        """Read torchrun's variables (absent: one process). A malformed one is a
        ConfigError naming it."""
        env = os.environ if environ is None else environ

        def number(name: str, default: int) -> int:
            text = env.get(name)
            if text is None or text == "":
                return default
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(
                    f"environment variable {name}={text!r} is not an integer"
                ) from None
            if value < 0:
                raise ConfigError(f"environment variable {name}={value} must not be negative")
            return value

        world = number("WORLD_SIZE", 1)
        local_world = number("LOCAL_WORLD_SIZE", world)
        proc = cls(number("RANK", 0), world, number("LOCAL_RANK", 0), local_world)
        if world < 1 or proc.rank >= world or proc.local_rank >= max(local_world, 1):
            raise ConfigError(
                f"RANK={proc.rank}, LOCAL_RANK={proc.local_rank}, WORLD_SIZE={world}, "
                f"LOCAL_WORLD_SIZE={local_world} do not fit together: start several processes "
                "with torchrun (or descent train --nproc N), which sets them"
            )
        return proc

    @property
    def distributed(self) -> bool:
        """More than one process: a process group, DDP and reductions."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0
