"""``lake train``: a small multi-label CNN trained straight from the lake's stream.

It proves the loader end to end: if the pipeline delivered wrong pixels or labels, the model
could not beat the label-frequency baseline. Input: S2 10 m + 20 m bands and S1 VV/VH,
resampled (bilinear) to a common grid and normalised with the official band statistics. Output:
19 logits. Metric: macro average precision (mAP) over the classes present in the validation
split, computed here (no sklearn), against the baseline that scores every patch with the class
frequencies of the training split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np

from lake.config import StoreSpec
from lake.errors import ConfigError

INPUTS: Final = ("s2_10m", "s2_20m", "s1")
N_CLASSES: Final = 19


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class (as ``sklearn.metrics.average_precision_score``).

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first; tied
    scores form one threshold.

    Args:
        scores: ``(n,)`` scores, higher meaning more likely positive.
        targets: ``(n,)`` 0/1 truth.

    Returns:
        The AP, or NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    positives = targets.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], targets[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last_of_threshold]
    seen = last_of_threshold + 1
    precision = tp / seen
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float, list[float]]:
    """Macro mAP over the classes that have at least one positive, and each class's AP."""
    per_class = [average_precision(scores[:, c], targets[:, c]) for c in range(targets.shape[1])]
    present = [ap for ap in per_class if not np.isnan(ap)]
    if not present:
        raise ConfigError("no validation patch has any label: cannot compute mAP")
    return float(np.mean(present)), per_class


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train` measured.

    Attributes:
        device: ``cuda`` or ``cpu``.
        epochs: Epochs trained.
        train_samples: Training samples seen (all epochs).
        seconds: Wall time of training (data loading included).
        samples_per_second: Training throughput.
        final_loss: Mean loss of the last epoch.
        val_samples: Validation patches.
        val_map: Validation mAP of the model.
        baseline_map: Validation mAP of the label-frequency baseline.
        per_class_ap: AP per class (NaN where the class has no validation positive).
    """

    device: str
    epochs: int
    train_samples: int
    seconds: float
    samples_per_second: float
    final_loss: float
    val_samples: int
    val_map: float
    baseline_map: float
    per_class_ap: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _model(in_channels: int) -> Any:
    import torch
    from torch import nn

    class SmallNet(nn.Module):
        """Two conv blocks, a 1x1 mixer, average+max pooling, a linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 32, 3, padding=1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1, stride=2),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.Conv2d(64, 64, 1),
                nn.ReLU(),
            )
            self.head = nn.Linear(128, N_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
            return self.head(pooled)

    return SmallNet()


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: use auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available here; use auto or cpu")
    return name


def train(
    lake: str | StoreSpec | None,
    *,
    task: str = "labels",
    epochs: int = 1,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    lr: float = 3e-3,
    seed: int = 0,
    resample_to: int = 60,
    release: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **s3: Any,
) -> TrainReport:
    """Train the small multi-label CNN on the lake's train split; evaluate on validation.

    Args:
        lake: The lake (URL or spec).
        task: Only ``labels`` (the other tasks are loader tasks without a model here).
        epochs: Epochs over the train split.
        batch_size: Batch size.
        workers: DataLoader worker processes (0: load in this process).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
        lr: Adam learning rate.
        seed: Seed of the model's initialisation and of the stream's order.
        resample_to: Common grid of the inputs, in pixels.
        release: The release (current when None).
        progress: Show a progress bar with loss and throughput.
        log: Where the summary lines go.
        **s3: S3 options when ``lake`` is a URL.

    Raises:
        ConfigError: A bad argument, or a split without patches.
    """
    import torch
    from torch import nn
    from tqdm import tqdm

    from lake.loader import LakeDataLoader, LakeDataset

    if task != "labels":
        raise ConfigError(
            f"--task {task!r}: lake train trains the multi-label classifier (task 'labels'); "
            "caption, vqa and refexp are served by lake.loader.LakeDataset for your own model"
        )
    if epochs < 1 or batch_size < 1 or workers < 0:
        raise ConfigError(f"epochs={epochs}, batch_size={batch_size}, workers={workers}: bad value")
    dev = _device(device)
    torch.manual_seed(seed)
    common: dict[str, Any] = {
        "modalities": [*INPUTS, "labels"],
        "resample_to": resample_to,
        "resample": "bilinear",
        "normalize": True,
        "release": release,
        "seed": seed,
        **s3,
    }
    train_ds = LakeDataset(lake, split="train", shuffle=True, **common)
    val_ds = LakeDataset(lake, split="validation", shuffle=False, **common)
    loader_kw: dict[str, Any] = {"num_workers": workers, "pin_memory": dev.startswith("cuda")}
    if workers:
        loader_kw["timeout"] = 300
    train_loader = LakeDataLoader(train_ds, batch_size=batch_size, **loader_kw)
    val_loader = LakeDataLoader(val_ds, batch_size=batch_size, **loader_kw)
    model = _model(4 + 6 + 2).to(dev)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    seen, started, epoch_loss = 0, time.perf_counter(), float("nan")
    for epoch in range(epochs):
        train_ds.set_epoch(epoch)
        model.train()
        losses: list[float] = []
        bar = tqdm(
            total=train_ds.rank_length,
            unit="img",
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not progress,
        )
        with bar:
            for batch in train_loader:
                x = _inputs(batch, dev)
                y = batch["labels"].to(dev, non_blocking=True)
                optim.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optim.step()
                losses.append(float(loss.detach()))
                seen += len(y)
                bar.update(len(y))
                rate = seen / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", img_s=f"{rate:.0f}")
        epoch_loss = float(np.mean(losses)) if losses else float("nan")
        rate = seen / (time.perf_counter() - started)
        log(f"epoch {epoch + 1}: loss {epoch_loss:.4f}, {rate:.1f} img/s")
    seconds = time.perf_counter() - started
    scores, targets = _predict(model, val_loader, dev)
    val_map, per_class = mean_average_precision(scores, targets)
    freq = train_ds.items.labels.mean(axis=0)
    baseline, _ = mean_average_precision(np.tile(freq, (len(targets), 1)), targets)
    report = TrainReport(
        device=dev,
        epochs=epochs,
        train_samples=seen,
        seconds=seconds,
        samples_per_second=seen / seconds if seconds > 0 else float("inf"),
        final_loss=epoch_loss,
        val_samples=len(targets),
        val_map=val_map,
        baseline_map=baseline,
        per_class_ap=per_class,
    )
    log(
        f"validation mAP {val_map:.3f} over {len(targets)} patches "
        f"(label-frequency baseline {baseline:.3f}); trained on {seen} samples in {seconds:.1f} s "
        f"({report.samples_per_second:.1f} img/s on {dev})"
    )
    return report


def _inputs(batch: dict[str, Any], dev: str) -> Any:
    import torch

    return torch.cat([batch[name] for name in INPUTS], dim=1).to(dev, non_blocking=True)


def _predict(model: Any, loader: Any, dev: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    model.eval()
    scores, targets = [], []
    with torch.no_grad():
        for batch in loader:
            scores.append(torch.sigmoid(model(_inputs(batch, dev))).cpu().numpy())
            targets.append(batch["labels"].numpy())
    return np.concatenate(scores), np.concatenate(targets)
