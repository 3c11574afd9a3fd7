# x_t by one step of the chain from x_0 (sqrt(alpha_t) x_0 + sqrt(beta_t) eps) instead of the one-shot form
/^static void draw_training_batch(/,/^}/ s/forward_one_shot(xt + b \* n, x0 + b \* n, eps + b \* n, s, t\[b\], n);/memcpy(xt + b * n, x0 + b * n, n * sizeof(real)), forward_one_step(xt + b * n, eps + b * n, s, t[b], n);/
