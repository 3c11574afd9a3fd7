# the integral by the rectangle rule, beta(u_t) / T (the linear schedule's first-order approximation)
/^static void schedule_betas(/,/^}/ s|vp_beta_integral((double)t / T) - vp_beta_integral((double)(t - 1) / T);|vp_beta((double)t / T) / T;|
