"""Sequence models on ``(N, T, F)`` windows: a bidirectional LSTM with attention and PatchTST.

Both train on the CPU with AdamW and class-weighted cross-entropy, shuffle with a seeded
generator, check the cancel token every batch, stop early when the validation loss has not
improved for ``patience`` epochs and keep the best epoch's weights. ``X`` is an array
``(N, T, F)`` or a :class:`~alphaops.datasets.SequenceWindows` (windows are then cut batch
by batch, never all at once). Same data, parameters and seed give the same weights.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((64, 8, 3)).astype(np.float32)
>>> y = (X[:, -1, 0] > 0).astype(int)
>>> model = LSTMAttentionModel(hidden=8, max_epochs=2).fit(X, y)
>>> model.predict_proba(X[:3]).shape, len(model.history_) <= 2
((3, 2), True)
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
import safetensors
import safetensors.torch
import torch
from torch import nn

from alphaops.core.errors import SpecError
from alphaops.training._base import Classifier, balanced_weights, encode_labels
from alphaops.training._control import CancelToken, ProgressCallback, notify
from alphaops.training._nets import BiLSTMAttention, PatchTST, Standardize, WithSoftmax
from alphaops.training.onnx_export import INPUT_NAME, OUTPUT_NAME

__all__ = ["LSTMAttentionModel", "PatchTSTModel", "WindowSource"]

FloatArray = npt.NDArray[np.float32]
_PREDICT_BATCH = 1024
_EVAL_BATCH = 256
# Each batch is run as micro-batches of at most this many windows, with a cancel check
# before each, so a cancel takes effect within ~50 ms even when a full batch takes longer
# (PatchTST, 1 thread). Gradients are summed, so the step equals one over the whole batch.
_MICRO_BATCH = 64
_SCALER_SAMPLE = 4096
_ONNX_OPSET = 18


class WindowSource(Protocol):
    """Anything that hands out ``(B, T, F)`` float32 windows by index, like SequenceWindows."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return ``(N, T, F)``."""
        ...

    def batch(self, indices: Any) -> FloatArray:
        """Return the windows at ``indices`` as a float32 array."""
        ...


class _ArrayWindows:
    def __init__(self, array: FloatArray) -> None:
        self.array = array

    @property
    def shape(self) -> tuple[int, int, int]:
        n, t, f = self.array.shape
        return int(n), int(t), int(f)

    def batch(self, indices: Any) -> FloatArray:
        return np.ascontiguousarray(self.array[indices])


class _Subset:
    def __init__(self, source: WindowSource, rows: npt.NDArray[np.int64]) -> None:
        self.source = source
        self.rows = rows

    @property
    def shape(self) -> tuple[int, int, int]:
        _, t, f = self.source.shape
        return int(self.rows.size), t, f

    def batch(self, indices: Any) -> FloatArray:
        return self.source.batch(self.rows[indices])


def _windows(X: Any, name: str = "X") -> WindowSource:
    if hasattr(X, "batch") and hasattr(X, "shape") and len(X.shape) == 3:
        source: WindowSource = X
    else:
        array = np.asarray(X, dtype=np.float32)
        if array.ndim != 3:
            raise SpecError(
                f"{name} must be (N, T, F) windows; got shape {array.shape}",
                fix="build windows with SequenceWindows or build_sequence_dataset; "
                "tabular rows go to random_forest/lightgbm/xgboost",
            )
        source = _ArrayWindows(array)
    if source.shape[0] == 0:
        raise SpecError(f"{name} holds no windows", fix="pass at least one window")
    return source


@contextlib.contextmanager
def _torch_session(threads: int, seed: int) -> Iterator[None]:
    # Seeded and single-threaded by default for reproducibility; the global RNG and thread
    # count are restored afterwards so other code in the process is not affected.
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous)


class _TorchModel(Classifier):
    input_kind = "sequence"
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    validation_fraction: float
    class_weight: str | None
    random_state: int
    n_threads: int

    @abstractmethod
    def _build(self, n_features: int, n_classes: int, lookback: int) -> nn.Module:
        """Return the untrained network for these input and output sizes."""

    def _architecture(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.get_params(),
            "n_features": self.n_features_in_,
            "lookback": self.lookback_,
            "classes": self.classes_.tolist(),
        }

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        *,
        X_val: Any | None = None,
        y_val: npt.ArrayLike | None = None,
        callbacks: Sequence[ProgressCallback] = (),
        cancel: CancelToken | None = None,
    ) -> Self:
        """Train up to ``max_epochs`` epochs with early stopping; keep the best epoch; return self."""
        source = _windows(X)
        n, lookback, n_features = source.shape
        classes, codes = encode_labels(y)
        if codes.size != n:
            raise SpecError(f"X has {n} windows but y has {codes.size}", fix="one label per window")
        if X_val is None or y_val is None:
            # The most recent windows validate (time order), the rest train.
            n_val = max(1, round(n * self.validation_fraction))
            if n - n_val < 1:
                raise SpecError(f"{n} windows are too few to hold out validation", fix="add data")
            train: WindowSource = _Subset(source, np.arange(n - n_val, dtype=np.int64))
            val: WindowSource = _Subset(source, np.arange(n - n_val, n, dtype=np.int64))
            train_codes, val_codes = codes[: n - n_val], codes[n - n_val :]
        else:
            train, train_codes = source, codes
            val = _windows(X_val, "X_val")
            if val.shape[1:] != (lookback, n_features):
                raise SpecError(
                    f"X_val windows are {val.shape[1:]}, X windows are {(lookback, n_features)}",
                    fix="build validation windows with the same lookback and features",
                )
            val_codes = np.searchsorted(classes, np.asarray(y_val, dtype=np.int64))
        self.classes_ = classes
        self.n_features_in_ = int(n_features)
        self.lookback_ = int(lookback)
        k = len(classes)
        with _torch_session(self.n_threads, self.random_state):
            net = self._build(n_features, k, lookback)
            self._fit_scaler(net, train)
            self._train(net, train, train_codes, val, val_codes, callbacks, cancel)
        return self

    def _fit_scaler(self, net: nn.Module, train: WindowSource) -> None:
        rng = np.random.default_rng(self.random_state)
        n = train.shape[0]
        rows = np.sort(rng.choice(n, size=min(n, _SCALER_SAMPLE), replace=False))
        sample = train.batch(rows).reshape(-1, train.shape[2]).astype(np.float64)
        std = sample.std(axis=0)
        scale = net.get_submodule("scale")
        assert isinstance(scale, Standardize)
        scale.mean.copy_(torch.from_numpy(sample.mean(axis=0)).float())
        scale.std.copy_(torch.from_numpy(np.where(std > 1e-12, std, 1.0)).float())

    def _train(
        self,
        net: nn.Module,
        train: WindowSource,
        train_codes: npt.NDArray[np.int64],
        val: WindowSource,
        val_codes: npt.NDArray[np.int64],
        callbacks: Sequence[ProgressCallback],
        cancel: CancelToken | None,
    ) -> None:
        k = len(self.classes_)
        weights = (
            balanced_weights(train_codes, k) if self.class_weight == "balanced" else np.ones(k)
        )
        class_weights = torch.tensor(weights, dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=class_weights)
        summed = nn.CrossEntropyLoss(weight=class_weights, reduction="sum")
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.random_state)
        targets = torch.from_numpy(train_codes)
        best_loss, best_state, best_epoch, waited = float("inf"), None, 0, 0
        history: list[dict[str, float]] = []
        n = train.shape[0]
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, self.batch_size):
                rows = np.sort(order[start : start + self.batch_size])
                optimizer.zero_grad()
                batch_weight = class_weights[targets[rows]].sum()
                for part in range(0, rows.size, _MICRO_BATCH):
                    if cancel is not None:
                        cancel.raise_if_cancelled(
                            f"epoch {epoch}, batch {start // self.batch_size}"
                        )
                    sub = rows[part : part + _MICRO_BATCH]
                    logits = net(torch.from_numpy(train.batch(sub)))
                    loss = summed(logits, targets[sub]) / batch_weight
                    loss.backward()
                    total += float(loss.detach()) * rows.size
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
            val_loss, val_accuracy = self._evaluate(net, val, val_codes, loss_fn, cancel)
            metrics = {"train_loss": total / n, "val_loss": val_loss, "val_accuracy": val_accuracy}
            history.append(metrics)
            if val_loss < best_loss - 1e-6:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
            notify(callbacks, epoch, self.max_epochs, metrics)
            if waited >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.best_epoch_ = best_epoch
        self.history_ = history

    def _evaluate(
        self,
        net: nn.Module,
        val: WindowSource,
        codes: npt.NDArray[np.int64],
        loss_fn: nn.Module,
        cancel: CancelToken | None,
    ) -> tuple[float, float]:
        net.eval()
        loss, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, val.shape[0], _EVAL_BATCH):
                if cancel is not None:
                    cancel.raise_if_cancelled(f"validation batch {start // _EVAL_BATCH}")
                rows = np.arange(start, min(start + _EVAL_BATCH, val.shape[0]))
                logits = net(torch.from_numpy(val.batch(rows)))
                target = torch.from_numpy(codes[rows])
                loss += float(loss_fn(logits, target)) * rows.size
                correct += int((logits.argmax(dim=1) == target).sum())
        return loss / val.shape[0], correct / val.shape[0]

    def predict_proba(self, X: Any) -> FloatArray:
        """Return class probabilities (float32) in ``classes_`` order."""
        self._check_fitted()
        source = _windows(X)
        n, lookback, n_features = source.shape
        self._check_features(n_features)
        if lookback != self.lookback_:
            raise SpecError(
                f"X windows have {lookback} bars, the model was fitted on {self.lookback_}",
                fix="build windows with the lookback used at fit",
            )
        parts = []
        with _torch_session(self.n_threads, self.random_state), torch.no_grad():
            for start in range(0, n, _PREDICT_BATCH):
                rows = np.arange(start, min(start + _PREDICT_BATCH, n))
                logits = self.net_(torch.from_numpy(source.batch(rows)))
                parts.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(parts).astype(np.float32)

    def to_onnx(self) -> bytes:
        """Export with ``torch.onnx.export`` (dynamo); batch is the one dynamic dimension."""
        self._check_fitted()
        with _torch_session(self.n_threads, self.random_state):
            return export_net(self.net_, self.lookback_, self.n_features_in_)

    def native_files(self) -> dict[str, bytes]:
        """Return ``model.safetensors`` (weights and scaler) and ``model.json`` (architecture)."""
        self._check_fitted()
        state = {k: v.contiguous() for k, v in self.net_.state_dict().items()}
        return {
            "model.safetensors": safetensors.torch.save(state),
            "model.json": json.dumps(self._architecture(), indent=2, sort_keys=True).encode(),
        }

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Return torch, onnxscript and safetensors versions."""
        import onnxscript

        return {
            "torch": torch.__version__,
            "onnxscript": onnxscript.__version__,
            "safetensors": safetensors.__version__,
        }


def export_net(net: Any, lookback: int, n_features: int) -> bytes:
    """Export a sequence network (``(batch, lookback, features)`` in, logits out) to ONNX that
    outputs class probabilities; batch is the one dynamic dimension. Used for alphaops's own
    families and for imported state dicts alike."""
    example = torch.zeros((2, lookback, n_features), dtype=torch.float32)
    with _quiet_exporter():
        program = torch.onnx.export(
            WithSoftmax(net).eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamo=True,
            opset_version=_ONNX_OPSET,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    return bytes(program.model_proto.SerializeToString())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    # The dynamo exporter logs and warns about internals (torchvision absent, deprecations in
    # torch itself) that say nothing about our model; parity is checked separately.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class LSTMAttentionModel(_TorchModel):
    """A bidirectional LSTM with additive attention over time."""

    family = "lstm"

    def __init__(
        self,
        hidden: int = 32,
        layers: int = 1,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 20,
        patience: int = 3,
        validation_fraction: float = 0.15,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_threads = n_threads

    def _build(self, n_features: int, n_classes: int, lookback: int) -> nn.Module:
        return BiLSTMAttention(n_features, n_classes, self.hidden, self.layers, self.dropout)


class PatchTSTModel(_TorchModel):
    """PatchTST: patches per channel, channel independence, a transformer encoder."""

    family = "patchtst"

    def __init__(
        self,
        patch_len: int = 8,
        stride: int = 4,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 20,
        patience: int = 3,
        validation_fraction: float = 0.15,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.patch_len = patch_len
        self.stride = stride
        self.d_model = d_model
        self.heads = heads
        self.layers = layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_threads = n_threads

    def _build(self, n_features: int, n_classes: int, lookback: int) -> nn.Module:
        if lookback < self.patch_len:
            raise SpecError(
                f"lookback={lookback} is shorter than patch_len={self.patch_len}",
                fix="raise the lookback or lower patch_len",
            )
        if self.d_model % self.heads:
            raise SpecError(
                f"d_model={self.d_model} is not divisible by heads={self.heads}",
                fix="pick d_model as a multiple of heads",
            )
        return PatchTST(
            n_features,
            n_classes,
            lookback,
            self.patch_len,
            self.stride,
            self.d_model,
            self.heads,
            self.layers,
            self.dropout,
        )
