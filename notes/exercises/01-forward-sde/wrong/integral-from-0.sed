# alpha_t = exp(-int_0^{u_t} beta): that is alpha_bar_t, not the one step's alpha_t
/^static void schedule_betas(/,/^}/ s|vp_beta_integral((double)t / T) - vp_beta_integral((double)(t - 1) / T);|vp_beta_integral((double)t / T);|
