"""img/s of the CPU train loader: a fixed train.size, a constant train.size_schedule (the
size fed at run time) and loader.repeated_augment: 3 (a pipeline per epoch), interleaved.

    python benchmarks/epoch_keys.py [folder]   # writes 300 textured 500x375 JPEGs there once
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from testkit import make_config, write_textured_folder  # noqa: E402

from dalinorm import DaliLoader  # noqa: E402

root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dalinorm-epoch-keys")
if not root.exists():
    write_textured_folder(root, n=300, sizes=((500, 375), (375, 500)))
common = ["loader.batch_size=32", "train.size=224", "loader.num_threads=2", "train.scale=[0.08, 1.0]"]
configs = {"fixed": make_config(root, *common),
           "schedule": make_config(root, *common, "train.size_schedule={min_res: 224, max_res: 224}"),
           "ra3": make_config(root, *common, "loader.repeated_augment=3")}
loaders = {name: DaliLoader(cfg, "train") for name, cfg in configs.items()}
for loader in loaders.values():  # warm: operators compiled, files in the page cache
    for _ in loader:
        pass
# wall-clock img/s, and CPU ms per delivered image (all of this process's threads: steadier
# than wall time on a machine that runs other work)
rates: dict[str, list[float]] = {name: [] for name in loaders}
cpu: dict[str, list[float]] = {name: [] for name in loaders}
for _ in range(5):
    for name, loader in loaders.items():
        start, used, images = time.perf_counter(), time.process_time(), 0
        for _ in range(2):  # two epochs: repeated augmentation builds a pipeline for each
            for _, labels in loader:
                images += len(labels)
        rates[name].append(images / (time.perf_counter() - start))
        cpu[name].append(1000 * (time.process_time() - used) / images)
for name, values in rates.items():
    print(f"{name}: median {statistics.median(values):.0f} img/s "
          f"({' '.join(f'{v:.0f}' for v in values)}), "
          f"{statistics.median(cpu[name]):.2f} CPU ms/image")
