# coef_x0 with sqrt(alpha_bar_t) instead of sqrt(alpha_bar_{t-1})
/^static void posterior_coefficients(/,/^}/ s/sqrt(s->alpha_bar\[t - 1\]) \* s->beta\[t\]/sqrt(s->alpha_bar[t]) * s->beta[t]/
