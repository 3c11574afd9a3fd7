#!/usr/bin/env python3
"""Float64 reference tables for the DDPM noise schedules in diffusion.c.

Independent of the C code: everything is vectorised numpy. Writes
data/schedule_{linear,cosine,sde}_T{1000,10}.txt in the same format as
`./diffusion schedule`:  t beta alpha alpha_bar beta_tilde coef_x0 coef_xt
Run from anywhere:  /usr/bin/python3 notes/schedule_reference.py
"""
import os
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def betas(name, T):
    """beta_t for t = 1..T (array index t-1)."""
    if name == "linear":  # Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"
        return np.linspace(1e-4, 0.02, T)
    if name == "cosine":  # Nichol & Dhariwal 2021, "Improved DDPM", eq. 17
        s = 0.008
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
        abar = f / f[0]  # abar(0) = 1
        return np.minimum(1 - abar[1:] / abar[:-1], 0.999)  # clip near t = T
    if name == "sde":  # Song et al. 2021, "Score-Based Generative Modeling through SDEs" (VP-SDE)
        u = np.arange(T + 1) / T  # beta(u) = 0.1 + 19.9 u integrated over [u_{k-1}, u_k]
        integral = 0.1 / T + 19.9 / 2 * (u[1:] ** 2 - u[:-1] ** 2)
        return -np.expm1(-integral)  # 1 - exp(-integral) without cancellation
    raise ValueError(name)


def table(name, T):
    beta = betas(name, T)
    alpha = 1 - beta
    abar = np.cumprod(alpha)  # for cosine: the cumprod of the *clipped* alphas
    abar_prev = np.concatenate(([1.0], abar[:-1]))  # alpha_bar_0 = 1
    one_m_prev = 1 - abar_prev  # exactly 0 at t = 1
    one_m = 1 - abar
    one_m[0] = beta[0]  # 1 - alpha_bar_1 = beta_1 exactly; avoids 1-(1-beta) rounding so coef_x0 = 1 at t=1
    # Posterior q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, beta_tilde I)  (Ho et al. eq. 6-7)
    beta_tilde = beta * one_m_prev / one_m
    coef_x0 = np.sqrt(abar_prev) * beta / one_m
    coef_xt = np.sqrt(alpha) * one_m_prev / one_m
    t = np.arange(1, T + 1)
    return np.column_stack([t, beta, alpha, abar, beta_tilde, coef_x0, coef_xt])


def write(name, T):
    path = os.path.join(ROOT, "data", f"schedule_{name}_T{T}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = table(name, T)
    with open(path, "w") as fh:
        fh.write(f"# t beta alpha alpha_bar beta_tilde coef_x0 coef_xt  (schedule={name} T={T}, "
                 "float64 reference from notes/schedule_reference.py)\n")
        for r in rows:
            fh.write("%d " % r[0] + " ".join("%.17g" % v for v in r[1:]) + "\n")
    return path, rows


if __name__ == "__main__":
    for T in (1000, 10):
        for name in ("linear", "cosine", "sde"):
            path, rows = write(name, T)
            print(f"{name:6s} T={T:<4d} alpha_bar_T = {rows[-1, 3]:.6e}  "
                  f"({os.path.getsize(path)} bytes -> {os.path.relpath(path, ROOT)})")
    # Literature spot check: linear 1e-4..0.02, T=1000 gives alpha_bar_T ~ 4.0358e-5.
    ab = table("linear", 1000)[-1, 3]
    print(f"spot check linear T=1000 alpha_bar_T = {ab:.6e} (expect ~4.0358e-05):",
          "OK" if abs(ab / 4.0358e-5 - 1) < 1e-4 else "MISMATCH")
