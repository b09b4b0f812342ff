r"""Exact population losses, gradients and Hessians of student–teacher ReLU networks.

Setting: g(x; W) = Σ_i σ(w_i·x), W ∈ R^{K×d}, teacher W* ∈ R^{K*×d}, x ~ N(0, I_d), and

    L(W) = ½ E (g(x;W) − g(x;W*))²,   J(W) = ½ E |∇_x g(x;W) − ∇_x g(x;W*)|²,   H_λ = L + λJ.

Since ∇_x g = Σ_i 1(w_i·x>0) w_i, expanding the squares gives, with k = ``relu_kernel`` and
m = ``grad_kernel`` (:mod:`sobolev.theory.kernels`) and k(w,w) = m(w,w) = |w|²/2,

    L = ½ [Σ_{i,j} k(w_i,w_j) − 2 Σ_{i,j} k(w_i,w*_j) + Σ_{i,j} k(w*_i,w*_j)]   (same for J with m).

Gradients (derived by hand; t = angle(a, b), â = a/|a|, e = unit vector of b ⊥ a, ∇_a t = −e/|a|):

    ∇_a k(a,b) = [(π − t) b + |b| sin t â] / (2π)
    ∇_a m(a,b) = [(π − t) b + (a·b)/|a| e] / (2π)
    ∇_{w_i} L = w_i/2 + Σ_{j≠i} ∇_a k(w_i,w_j) − Σ_j ∇_a k(w_i,w*_j)       (same for J with m)

**Autodiff gradient and the boundary term.** The per-sample loss ½|∇_x g(x;W) − ∇_x g(x;W*)|²,
differentiated by autodiff with the indicators held constant (what SGD on the empirical H1 loss
computes), has w_i-gradient 1(w_i·x>0)(∇_x g(x;W) − ∇_x g(x;W*)), with expectation

    E[autodiff ∇_{w_i} J] = w_i/2 + Σ_{j≠i} (π − t_ij) w_j/(2π) − Σ_j (π − t*_ij) w*_j/(2π).

The population gradient ∇J has in addition the terms (w_i·b)/(2π|w_i|) e(w_i, b), which come from
differentiating the indicator 1(w_i·x>0) (its jump across the hyperplane w_i·x = 0, a surface
integral):

    ∇_{w_i} J − E[autodiff ∇_{w_i} J]
        = Σ_{j≠i} (w_i·w_j)/(2π|w_i|) e_ij − Σ_j (w_i·w*_j)/(2π|w_i|) e*_ij
        = −Σ_{j≠i} (w_i·w_j)/(2π) ∇t_ij + Σ_j (w_i·w*_j)/(2π) ∇t*_ij,

for K = K* = 1: (w·w*)/(2π) ∇_w t. For L there is no such term (σ is continuous, the jump of σ′
multiplies σ(w_i·x) = 0 on the hyperplane): E[autodiff ∇L] = ∇L.

**Regularity.** Both kernels are positively homogeneous of degree 1 in each argument, hence not
differentiable at a = 0: zero rows are rejected. For distinct rows at t = 0 or π (aligned or
opposite): k is C² there (k = |a||b|(π − πt²/2 + t³/3 + …)/(2π), and |y|³ is C²), its Hessian
contribution |b| sin t (I − ââᵀ + eeᵀ)/(2π|a|) → 0; m is *not* differentiable there
(m ≈ |a||b|(π − t)/(2π), a cone in the transverse direction): ∇J has a jump of size
|a·b|/(2π|a|) along e, and ∇²J grows like 1/sin t (see :mod:`sobolev.theory.k1`). At such pairs
``population_grad`` returns the minimal-norm subgradient (rounded off, see ``population_grad``), and
the Hessians raise ``ValueError`` (this implementation differentiates t by autodiff, which is
undefined at t ∈ {0, π}, also for L whose Hessian exists there).

Hessians are assembled from torch autodiff (``torch.func.hessian``) of the closed-form pair kernels
in float64 (only pairs of rows interact); they are (K·d, K·d) matrices for the row-major flattening
W.reshape(-1), i.e. index i·d + k ↔ W[i, k]. Tests check them against finite differences of the
hand-derived gradients and, for K = 1, against the explicit formulas.

Inputs: tensors, arrays or nested lists; outputs: float64 torch tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import as_pair, part_weights
from .kernels import DEGENERATE_SINE, grad_kernel, orthogonal_direction, pair_angles, relu_kernel

Field = Callable[[Tensor, Tensor], Tensor]


def _offdiag(K: int, upper: bool) -> tuple[Tensor, Tensor]:
    """Index pairs (i, j) with i < j (``upper``) or i ≠ j.

    Not cached: index tensors created inside a ``torch.func`` transform belong to its level, and a
    cached one reused by a later transform crashes it (two ``torch.func.hessian`` calls in a row).
    """
    i, j = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    keep = i < j if upper else i != j
    return i[keep], j[keep]


def _gram_sum(
    kernel: Callable[[Tensor, Tensor], Tensor], A: Tensor, B: Tensor | None = None
) -> Tensor:
    """Σ_{i,j} kernel(a_i, b_j); with B None, Σ_{i,j} kernel(a_i, a_j) with self terms |a_i|²/2."""
    if B is None:
        i, j = _offdiag(A.shape[0], upper=True)
        return 0.5 * (A * A).sum() + 2 * kernel(A[i], A[j]).sum()
    return kernel(A[:, None, :], B[None, :, :]).sum()


def _loss(W: Tensor, W_star: Tensor, c_L: float, c_J: float) -> Tensor:
    """c_L·L + c_J·J for validated inputs (autodiff-friendly)."""
    total = W.new_zeros(())
    for c, kernel in ((c_L, relu_kernel), (c_J, grad_kernel)):
        if c:
            total = total + c * 0.5 * (
                _gram_sum(kernel, W) - 2 * _gram_sum(kernel, W, W_star) + _gram_sum(kernel, W_star)
            )
    return total


def _field_sum(field: Field, W: Tensor, W_star: Tensor) -> Tensor:
    """Σ_{j≠i} field(w_i, w_j) − Σ_j field(w_i, w*_j), shape (K, d)."""
    K, Ks = W.shape[0], W_star.shape[0]
    i, j = _offdiag(K, upper=False)
    out = torch.zeros_like(W).index_add(0, i, field(W[i], W[j]))
    return out - field(W[:, None, :].expand(K, Ks, -1), W_star[None].expand(K, Ks, -1)).sum(1)


def _relu_field(a: Tensor, b: Tensor) -> Tensor:
    """∇_a relu_kernel(a, b) = [(π − t) b + |b| sin t â] / (2π)."""
    t = pair_angles(a, b)[..., None]
    scale = torch.linalg.vector_norm(b, dim=-1, keepdim=True) / torch.linalg.vector_norm(
        a, dim=-1, keepdim=True
    )
    return ((math.pi - t) * b + scale * torch.sin(t) * a) / (2 * math.pi)


def _autodiff_field(a: Tensor, b: Tensor) -> Tensor:
    """E[1(a·x>0)1(b·x>0)] b = (π − t) b / (2π): the expected autodiff part of ∇_a grad_kernel."""
    return (math.pi - pair_angles(a, b))[..., None] * b / (2 * math.pi)


def _boundary_field(kink_tol: float) -> Field:
    """(a·b)/(2π|a|) e(a, b): the indicator-jump part of ∇_a grad_kernel (rounded off
    below kink_tol)."""

    def field(a: Tensor, b: Tensor) -> Tensor:
        coef = (a * b).sum(-1, keepdim=True) / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
        return coef * orthogonal_direction(a, b, sine_tol=kink_tol) / (2 * math.pi)

    return field


def _expected_autodiff_grad(W: Tensor, W_star: Tensor, c_L: float, c_J: float) -> Tensor:
    # W/2: gradient of the self terms ½·|w_i|²/2 of L and J (the autodiff one too: E[1(w·x>0)] w =
    # w/2).
    grad = (c_L + c_J) * 0.5 * W
    if c_L:
        grad = grad + c_L * _field_sum(_relu_field, W, W_star)
    if c_J:
        grad = grad + c_J * _field_sum(_autodiff_field, W, W_star)
    return grad


def _boundary(W: Tensor, W_star: Tensor, kink_tol: float) -> Tensor:
    return _field_sum(_boundary_field(kink_tol), W, W_star)


def population_loss(W, W_star, part: str = "L", lam: float = 1.0) -> Tensor:
    """Closed-form L, J or H_λ = L + λJ (``lam`` used for "H" only); 0-dim float64 tensor.

    Differentiable by torch autograd when ``W`` is a float64 tensor requiring grad.
    """
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    return _loss(W, W_star, c_L, c_J)


def population_grad(
    W, W_star, part: str = "L", lam: float = 1.0, *, kink_tol: float = DEGENERATE_SINE
) -> Tensor:
    """Exact gradient ∇_W of L, J or H_λ, shape (K, d).

    J has a kink where two rows are aligned or opposite (sin t = 0); pairs with sin t < ``kink_tol``
    get their boundary term scaled by sin t/kink_tol (the gradient of J with each kink rounded off
    over an angle ≈ kink_tol, Lipschitz), and 0, the minimal-norm subgradient, at sin t = 0. The
    default only touches pairs that are aligned to rounding error.
    """
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    grad = _expected_autodiff_grad(W, W_star, c_L, c_J)
    return grad + c_J * _boundary(W, W_star, kink_tol) if c_J else grad


def expected_autodiff_grad(W, W_star, part: str = "L", lam: float = 1.0) -> Tensor:
    """E_x of the per-sample autodiff gradient (indicators held constant), closed form, (K, d).

    Equals ``population_grad`` for part "L"; for J and H it lacks ``λ · indicator_boundary_term``.
    """
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    return _expected_autodiff_grad(W, W_star, c_L, c_J)


def indicator_boundary_term(W, W_star, *, kink_tol: float = DEGENERATE_SINE) -> Tensor:
    """∇J − E[autodiff ∇J], shape (K, d): the indicator-jump term (K = K* = 1: (w·w*)/(2π)
    ∇_w t)."""
    W, W_star = as_pair(W, W_star)
    return _boundary(W, W_star, kink_tol)


def min_pair_sine(W, W_star) -> float:
    """Smallest sin t over student–student (i ≠ j) and student–teacher row pairs (1.0 if none)."""
    W, W_star = as_pair(W, W_star)
    i, j = _offdiag(W.shape[0], upper=True)
    t = torch.cat(
        [pair_angles(W[i], W[j]), pair_angles(W[:, None, :], W_star[None, :, :]).flatten()]
    )
    return float(torch.sin(t.detach()).min())


def _check_nondegenerate(W: Tensor, W_star: Tensor, what: str) -> None:
    s = min_pair_sine(W, W_star)
    if s <= DEGENERATE_SINE:
        raise ValueError(
            f"the {what} is not defined by this implementation where two distinct rows of W, or a "
            f"row of W and a row of W_star, are aligned or opposite (min sin(angle) = {s:.3g}); J "
            "has a kink there (its Hessian blows up like 1/sin t); perturb W"
        )


def _pair_hessians(c_L: float, c_J: float, A: Tensor, B: Tensor, both: bool):
    """Hessians of f = c_L·k + c_J·m for row pairs (a_p, b_p): (P, d, d) blocks ∂²_aa (and, if
    ``both``, ∂²_ab, ∂²_bb), by vmapped torch.func.hessian of the closed-form kernels."""

    def f(a: Tensor, b: Tensor) -> Tensor:
        return c_L * relu_kernel(a, b) + c_J * grad_kernel(a, b)

    if both:
        (h_aa, h_ab), (_, h_bb) = torch.func.vmap(torch.func.hessian(f, argnums=(0, 1)))(A, B)
        return h_aa, h_ab, h_bb
    return torch.func.vmap(torch.func.hessian(f, argnums=0))(A, B)


def population_hessian(W, W_star, part: str = "L", lam: float = 1.0) -> Tensor:
    """Exact Hessian of L, J or H_λ, shape (K·d, K·d), row-major flattening of W (index i·d + k).

    Assembled from the self terms (½(c_L + c_J)·I per diagonal block) and the 2d × 2d Hessians of
    the pair kernels (autodiff of the closed form: weight +1 for student pairs i < j, −1 for
    student–teacher pairs). Raises ``ValueError`` at degenerate angles.
    """
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    W, W_star = W.detach(), W_star.detach()
    _check_nondegenerate(W, W_star, "Hessian")
    (K, d), Ks = W.shape, W_star.shape[0]
    blocks = torch.zeros(K, K, d, d, dtype=W.dtype)
    blocks[range(K), range(K)] = 0.5 * (c_L + c_J) * torch.eye(d, dtype=W.dtype)
    i, j = _offdiag(K, upper=True)
    if i.numel():
        h_aa, h_ab, h_bb = _pair_hessians(c_L, c_J, W[i], W[j], both=True)
        blocks.index_put_((i, i), h_aa, accumulate=True)
        blocks.index_put_((j, j), h_bb, accumulate=True)
        blocks.index_put_((i, j), h_ab, accumulate=True)
        blocks.index_put_((j, i), h_ab.transpose(1, 2), accumulate=True)
    rows = torch.arange(K).repeat_interleave(Ks)
    h_cross = _pair_hessians(c_L, c_J, W[rows], W_star.repeat(K, 1), both=False)
    blocks.index_put_((rows, rows), -h_cross, accumulate=True)
    hess = blocks.permute(0, 2, 1, 3).reshape(K * d, K * d)
    return 0.5 * (hess + hess.T)


def expected_autodiff_jacobian(W, W_star, part: str = "L", lam: float = 1.0) -> Tensor:
    """Jacobian of ``expected_autodiff_grad`` w.r.t. W, (K·d, K·d), row-major; not symmetric for
    J, H.

    It is the linearisation of the flow that SGD on the empirical loss follows on average.
    """
    c_L, c_J = part_weights(part, lam)
    W, W_star = as_pair(W, W_star)
    W, W_star = W.detach(), W_star.detach()
    _check_nondegenerate(W, W_star, "Jacobian")
    fn = lambda w: _expected_autodiff_grad(w.reshape(W.shape), W_star, c_L, c_J).reshape(-1)
    return torch.func.jacfwd(fn)(W.reshape(-1))
