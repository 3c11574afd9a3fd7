# eq. (2) with the one-step alpha_t instead of alpha_bar_t
/^static void ddpm_step(/,/^}/ s/x0_hat_from_eps(x0_hat, x, eps, s->alpha_bar\[t\], s->one_minus_alpha_bar\[t\]/x0_hat_from_eps(x0_hat, x, eps, s->alpha[t], s->beta[t]/
