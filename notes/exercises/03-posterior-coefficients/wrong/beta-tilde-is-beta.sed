# posterior variance beta_t (DDPM's other choice of sigma^2, not the posterior's) instead of beta_tilde_t
/^static void posterior_coefficients(/,/^}/ s/s->beta_tilde\[t\] = s->beta\[t\] \* omab_prev \/ omab;/s->beta_tilde[t] = s->beta[t];/
