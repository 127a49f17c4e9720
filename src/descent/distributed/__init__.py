"""Where a run executes: its device, its CPU threads, and its place among processes.

process.py   torchrun's env:// contract (RANK, WORLD_SIZE, LOCAL_RANK, ...), torch-free
threads.py   the default thread count and OpenMP's wait policy, torch-free
devices.py   --device auto|cpu|cuda|cuda:N|mps -> a torch.device
group.py     the process group (only when WORLD_SIZE > 1): DDP, exact reductions,
             agreed stops, rank 0's barrier, teardown
"""
