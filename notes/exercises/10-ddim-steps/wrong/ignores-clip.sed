# ignores --clip-x0 (passes 0 to x0_hat_from_eps)
/^static void ddim_step(/,/^}/ s/s->one_minus_alpha_bar\[t\], n, clip);/s->one_minus_alpha_bar[t], n, 0);/
