"""PCA monitoring statistics for a stack of devices with the same number of channels.

Everything here works on stacks (``devices x channels`` vectors, ``devices x channels x
channels`` matrices), so many devices cost one call. A model is the eigendecomposition of
a device's correlation matrix; a row is standardised, projected on the ``k`` leading
components, and summarised by two statistics with their per-channel contributions:

* **Hotelling T²** — the squared Mahalanobis distance inside the model plane, for
  unusually large movements *along* the usual correlations. Its contributions are the
  squares of ``P Λ^{-1/2} Pᵀ z`` (non-negative and summing to T²).
* **SPE / Q** — the squared distance *from* the plane, for readings that break the usual
  correlations. Its contributions are the squared residuals per channel.

Tail probabilities: T² of a new observation against a model estimated from ``n``
observations follows ``k(n²-1)/(n(n-k)) F(k, n-k)`` (Tracy, Young & Mason 1992); Q is
approximated as ``g χ²_h`` with ``g = θ₂/θ₁``, ``h = θ₁²/θ₂`` over the residual
eigenvalues (Box 1954; the form behind Nomikos & MacGregor's limit) and, because the
residual eigenvalues are themselves estimated from ``n`` observations, referred to
``F(h, n-k-1)`` rather than χ²_h. ``n`` is the effective number of rows behind the model
(Kish: ``1/Σw²`` of its weights), so a model learned from few rows alerts less readily.

>>> import numpy as np
>>> cov = np.array([[[1.0, 0.9], [0.9, 1.0]]])
>>> m = fit(cov, np.zeros((1, 2)), variance=0.9, min_std=0.0)
>>> m.k.tolist(), np.round(m.values, 2).tolist()
([1], [[1.9, 0.1]])
>>> s = statistics(np.array([[1.0, -1.0]]), m)
>>> round(float(s.q[0]), 2), int(np.argmax(s.q_parts[0])) in (0, 1)
(2.0, True)
"""

from __future__ import annotations

__all__ = ["Model", "Stats", "fit", "row_p", "statistics", "std"]

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import fdtrc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_EIG_FLOOR = 1e-9
"""Smallest eigenvalue kept, relative to the trace: exactly collinear channels leave a
zero residual eigenvalue, which would turn rounding noise into infinite Q."""


@dataclass(frozen=True, slots=True)
class Model:
    """Per device: eigenvectors (columns, descending), eigenvalues, components kept, Q's g, h."""

    vectors: F64
    values: F64
    k: I64
    g: F64
    h: F64


@dataclass(frozen=True, slots=True)
class Stats:
    """Per row: T², Q and their per-channel contributions."""

    t2: F64
    q: F64
    t2_parts: F64
    q_parts: F64


def std(cov: F64, mean: F64, min_std: float) -> F64:
    """Per-channel standard deviations from a stack of covariances, floored.

    The floor (``min_std``, and a millionth of the level) keeps a channel that was
    constant so far from dividing by zero.
    """
    sd = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    floor = np.maximum(min_std, 1e-6 * np.maximum(np.abs(mean), 1.0))
    out: F64 = np.maximum(sd, floor)
    return out


def fit(cov: F64, mean: F64, *, variance: float, min_std: float) -> Model:
    """Eigendecomposition of each correlation matrix; ``k`` explains ``variance``."""
    c = cov.shape[-1]
    sd = std(cov, mean, min_std)
    corr = cov / (sd[:, :, None] * sd[:, None, :])
    values, vectors = np.linalg.eigh(corr)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]  # descending
    total = np.maximum(values.sum(axis=1, keepdims=True), 1e-300)
    values = np.maximum(values, _EIG_FLOOR * total)
    explained = np.cumsum(values, axis=1) / values.sum(axis=1, keepdims=True)
    k = np.minimum((explained < variance).sum(axis=1) + 1, max(c - 1, 1))
    resid = np.where(np.arange(c) >= k[:, None], values, 0.0)
    theta1, theta2 = resid.sum(axis=1), (resid**2).sum(axis=1)
    ok = theta2 > 0  # a single channel has no residual space
    g = np.where(ok, theta2 / np.where(ok, theta1, 1.0), 1.0)
    h = np.where(ok, theta1**2 / np.where(ok, theta2, 1.0), 1.0)
    return Model(np.ascontiguousarray(vectors), np.ascontiguousarray(values), k, g, h)


def statistics(z: F64, model: Model) -> Stats:
    """T², Q and contributions of standardised rows ``z`` (devices x channels)."""
    c = z.shape[1]
    keep = np.arange(c) < model.k[:, None]
    t = np.einsum("gij,gi->gj", model.vectors, z)
    tk = np.where(keep, t, 0.0)
    t2_parts = np.einsum("gij,gj->gi", model.vectors, tk / np.sqrt(model.values)) ** 2
    resid = z - np.einsum("gij,gj->gi", model.vectors, tk)
    q_parts = resid**2
    if c == 1:
        q_parts = np.zeros_like(q_parts)
    return Stats(t2_parts.sum(axis=1), q_parts.sum(axis=1), t2_parts, q_parts)


def row_p(stats: Stats, model: Model, n_eff: F64) -> tuple[F64, F64]:
    """Tail probabilities of T² and of Q for models learned from ``n_eff`` rows."""
    k = model.k.astype(np.float64)
    n = np.maximum(n_eff, k + 2.0)
    f_t2 = stats.t2 * n * (n - k) / (k * (n * n - 1.0))
    p_t2: F64 = fdtrc(k, n - k, f_t2)
    f_q = stats.q / (model.g * model.h)
    p_q: F64 = np.where(stats.q > 0, fdtrc(model.h, np.maximum(n - k - 1.0, 1.0), f_q), 1.0)
    return p_t2, p_q
