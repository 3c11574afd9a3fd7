# adds beta_tilde_t z, the variance, instead of sqrt(beta_tilde_t) z
/^static void ddpm_step(/,/^}/ s/double sd = sqrt(s->beta_tilde\[t\]);/double sd = s->beta_tilde[t];/
